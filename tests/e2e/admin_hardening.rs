//! The Admin API against hostile and careless clients: bodies too large or too deep, browsers
//! sending requests for other sites or through rebound DNS names, TLS where the listen flag says
//! `ssl`, listen flags that cannot be honoured, clients that go away in the middle of a write, and
//! Admin API work kept off the proxy's worker threads.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gateway_tests::pki::TestCa;
use gateway_tests::{
    DEADLINE, Exchange, Gateway, conf_dir, free_port, http_json, http_request, http_send, poll, wasm_fixture,
};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// A traditional node on the embedded store, all its ports free ones on 127.0.0.1.
struct Node {
    _gateway: Gateway,
    proxy: SocketAddr,
    admin: SocketAddr,
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a node in `dir` (its `kong.conf` there, written by [`conf`]).
fn start(dir: &Path, env: &[(&str, &str)]) -> Gateway {
    let mut gateway = Gateway::start(dir, &["-c", "kong.conf"], env);
    gateway.wait_for_log("gateway started");
    gateway
}

/// A kong.conf for a traditional node with its listeners on `ports` and `extra` lines (which win).
fn conf(ports: (u16, u16, u16), admin_flags: &str, status_flags: &str, extra: &[String]) -> Vec<String> {
    let (proxy, admin, status) = ports;
    let mut lines = vec![
        "prefix = servroot".to_string(),
        format!("proxy_listen = 127.0.0.1:{proxy}"),
        format!("admin_listen = 127.0.0.1:{admin} {admin_flags}"),
        format!("status_listen = 127.0.0.1:{status} {status_flags}"),
        format!("wasm_plugins_path = {}", wasm_fixture("noop").parent().unwrap().display()),
        "plugins = bundled, noop".to_string(),
    ];
    lines.extend_from_slice(extra);
    lines
}

fn node(extra: &[String]) -> (tempfile::TempDir, Node) {
    let ports = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&conf(ports, "", "", extra));
    let gateway = start(dir.path(), &[]);
    (dir, Node { _gateway: gateway, proxy: at(ports.0), admin: at(ports.1) })
}

fn get(addr: SocketAddr, path: &str) -> Exchange {
    http_request(addr, "GET", path, &[]).unwrap()
}

fn send(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &[u8]) -> Exchange {
    http_send(addr, method, path, &[("Content-Type", content_type)], Some(body)).unwrap()
}

/// A JSON value nested `depth` deep (`{}` is 1).
fn nested(depth: usize) -> Value {
    let mut value = json!({});
    for _ in 1..depth {
        value = json!({ "a": value });
    }
    value
}

#[test]
fn bodies_over_the_size_limit_are_413_and_the_node_goes_on() {
    let (_dir, node) = node(&["nginx_admin_client_max_body_size = 1k".into()]);

    // Refused from the declared length, before the body is sent.
    let mut stream = TcpStream::connect(node.admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /services HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n",
        node.admin
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("nginx_admin_client_max_body_size"), "the answer names the setting: {head}");

    // Refused while reading a body that declared no length (chunked).
    let mut stream = TcpStream::connect(node.admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /services HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n",
        node.admin,
        "x".repeat(0x800)
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&head[..n]));

    // Within the limit: an ordinary answer.
    let ok =
        http_json(node.admin, "POST", "/services", &json!({"name": "s", "host": "a.test", "tags": ["x".repeat(500)]}));
    assert_eq!(ok.status, 201, "{ok:?}");
}

#[test]
fn deep_bodies_are_refused_naming_the_limit_and_never_kill_the_node() {
    let (_dir, node) = node(&[]);
    let limit = "64 levels";

    // JSON and YAML: 126 deep used to be stored and then unreadable at the next start.
    let deep = json!({"name": "noop", "config": nested(125)});
    let refused = http_json(node.admin, "POST", "/plugins", &deep);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.json()["message"].as_str().unwrap().contains(limit), "{refused:?}");
    let yaml = format!("name: noop\nconfig: {}\n", nested(100));
    let refused = send(node.admin, "POST", "/plugins", "application/yaml", yaml.as_bytes());
    assert_eq!(
        (refused.status, refused.json()["message"].as_str().unwrap().contains(limit)),
        (400, true),
        "{refused:?}"
    );
    let document = json!({"_format_version": "3.0", "services": [{"host": "a.test", "tags": [nested(70)]}]});
    let refused = http_json(node.admin, "POST", "/config", &document);
    assert_eq!(
        (refused.status, refused.json()["message"].as_str().unwrap().contains(limit)),
        (400, true),
        "{refused:?}"
    );

    // A form key `config.a.a.a…` of 100 KB used to overflow the stack and kill the process.
    let form = format!("name=noop&config.{}=1", vec!["a"; 50_000].join("."));
    let refused = send(node.admin, "POST", "/plugins", "application/x-www-form-urlencoded", form.as_bytes());
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.json()["message"].as_str().unwrap().contains(limit), "{refused:?}");

    // Malformed values are field errors, not a dead connection.
    for url in ["http:a", "http:", "http://", "https//a"] {
        let answer = http_json(node.admin, "POST", "/services", &json!({"url": url}));
        assert_eq!(answer.status, 400, "{url}: {answer:?}");
    }

    assert_eq!(get(node.admin, "/").status, 200, "the node is still up");
    assert_eq!(get(node.admin, "/plugins").json()["data"], json!([]), "nothing was stored");
}

#[test]
fn what_is_committed_reads_back_after_a_restart() {
    let ports = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&conf(ports, "", "", &[]));
    let gateway = start(dir.path(), &[]);
    let (admin, status) = (at(ports.1), at(ports.2));

    // Plugin bodies 64 levels deep (the most a body may have), 65 and 127: the noop plugin keeps
    // its `data` as given, so the 64-level one is stored and must read back after the restart.
    let body = |depth: usize| json!({"name": "noop", "instance_name": format!("deep-{depth}"), "config": {"data": nested(depth - 2)}});
    let stored = http_json(admin, "POST", "/plugins", &body(64));
    assert_eq!(stored.status, 201, "64 levels: {stored:?}");
    let deep = stored.json()["config"].clone();
    assert_eq!(deep, body(64)["config"]);
    for depth in [65, 127] {
        let answer = http_json(admin, "POST", "/plugins", &body(depth));
        assert_eq!(answer.status, 400, "{depth} levels: {answer:?}");
    }
    let form = "name=s&tags[]=t&url=http://a.test:81/p";
    let created = send(admin, "POST", "/services", "application/x-www-form-urlencoded", form.as_bytes());
    assert_eq!(created.status, 201, "{created:?}");
    let hash = get(status, "/status").json()["configuration_hash"].clone();
    let exported = get(admin, "/config");
    assert_eq!(exported.status, 200, "the configuration exports");

    drop(gateway);
    let gateway = start(dir.path(), &[]);
    assert_eq!(get(status, "/status").json()["configuration_hash"], hash, "the same configuration after a restart");
    assert_eq!(get(admin, "/services/s").json()["tags"], json!(["t"]));
    assert_eq!(get(admin, "/plugins/deep-64").json()["config"], deep, "the deep configuration reads back");
    drop(gateway);
}

#[test]
fn browsers_cannot_write_cross_site_or_through_rebound_names() {
    let (_dir, node) = node(&["admin_allowed_hosts = admin.example.test, *.ops.example.test".into()]);
    let body = br#"{"name": "s", "host": "a.test"}"#;
    let post = |headers: &[(&str, &str)]| http_send(node.admin, "POST", "/services", headers, Some(body)).unwrap();

    // A form a page may post cross-site without asking first: text/plain is 415.
    let plain = post(&[("Content-Type", "text/plain")]);
    assert_eq!(plain.status, 415, "{plain:?}");
    assert_eq!(post(&[]).status, 415, "a body needs a content type");

    // A browser sending for another site.
    let json = ("Content-Type", "application/json");
    let origin = post(&[json, ("Origin", "http://evil.example")]);
    assert_eq!(origin.status, 403, "{origin:?}");
    assert!(origin.json()["message"].as_str().unwrap().contains("cross-origin"), "{origin:?}");
    assert_eq!(post(&[json, ("Sec-Fetch-Site", "cross-site")]).status, 403);
    assert_eq!(http_request(node.admin, "GET", "/services", &[("Sec-Fetch-Site", "cross-site")]).unwrap().status, 403);

    // DNS rebinding: a name that is not the Admin API's.
    let rebound = http_request(node.admin, "GET", "/", &[("Host", "attacker.example:8001")]).unwrap();
    assert_eq!(rebound.status, 403, "{rebound:?}");
    assert!(rebound.json()["message"].as_str().unwrap().contains("admin_allowed_hosts"), "{rebound:?}");
    assert_eq!(http_request(node.admin, "GET", "/", &[("Host", "evil.com#.example.test")]).unwrap().status, 400);
    assert_eq!(get(node.admin, "/services").json()["data"], json!([]), "nothing was written");

    // What is allowed: IP literals, localhost, listed names, same-origin browser requests.
    let origin = format!("http://{}", node.admin);
    let allowed = post(&[json, ("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(allowed.status, 201, "{allowed:?}");
    for host in ["localhost", "admin.example.test:8001", "a.ops.example.test", "[::1]:1", "10.0.0.1"] {
        let answer = http_request(node.admin, "GET", "/services/s", &[("Host", host)]).unwrap();
        assert_eq!(answer.status, 200, "Host {host}: {answer:?}");
    }
    // The proxy is not the Admin API: it keeps answering any host.
    assert_eq!(http_request(node.proxy, "GET", "/", &[("Host", "attacker.example")]).unwrap().status, 404);
}

/// Accepts exactly one certificate, by its DER: proof of which certificate a listener presented.
#[derive(Debug)]
struct Pinned(Vec<u8>);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

/// `GET path` over TLS with HTTP/1.1; the status code.
pub(crate) fn tls_get(addr: SocketAddr, name: &str, config: rustls::ClientConfig, path: &str) -> Result<u16, String> {
    let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let server = ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

#[test]
fn admin_and_status_listeners_speak_tls_where_the_flag_says_ssl() {
    let ca = TestCa::new("admin test CA");
    let pem = ca.server(&["admin.test"]);
    let ports = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&conf(
        ports,
        "ssl",
        "ssl http2",
        &[
            format!("admin_ssl_cert = {}", pem.cert.replace('\n', "\\n")),
            format!("admin_ssl_cert_key = {}", pem.key.replace('\n', "\\n")),
            "admin_allowed_hosts = admin.test".into(),
        ],
    ));
    let _gateway = start(dir.path(), &[]);
    let (admin, status) = (at(ports.1), at(ports.2));

    // The Admin API presents admin_ssl_cert, verified against its CA and name.
    assert_eq!(tls_get(admin, "admin.test", ca.client_config(&["http/1.1"]), "/status"), Ok(200));
    // The status API, with no certificate configured, presents the self-signed default.
    let default = std::fs::read_to_string(dir.path().join("servroot/ssl/default.crt")).unwrap();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(default.as_bytes()).unwrap().to_vec();
    let pinned = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(der)))
        .with_no_client_auth();
    assert_eq!(tls_get(status, "localhost", pinned, "/status"), Ok(200));
    // Neither answers plain HTTP on its TLS port.
    for addr in [admin, status] {
        let plain = http_request(addr, "GET", "/status", &[]);
        assert!(plain.is_err() || plain.as_ref().is_ok_and(|e| e.status == 400), "{addr}: {plain:?}");
    }
}

#[test]
fn listen_flags_that_cannot_be_honoured_stop_the_start_naming_key_and_flag() {
    for (line, key, flag) in [
        ("admin_listen = 127.0.0.1:{port} proxy_protocol", "admin_listen", "proxy_protocol"),
        ("status_listen = 127.0.0.1:{port} deferred", "status_listen", "deferred"),
        ("proxy_listen = 127.0.0.1:{port} proxy_protocol", "proxy_listen", "proxy_protocol"),
        ("cluster_listen = 127.0.0.1:{port} ssl", "cluster_listen", "ssl"),
        ("admin_listen = 127.0.0.1:{port} ipv6only=on", "admin_listen", "ipv6only"),
    ] {
        let ports = (free_port(), free_port(), free_port());
        let mut lines = conf(ports, "", "", &[]);
        lines.push(line.replace("{port}", &free_port().to_string()));
        let (dir, _) = conf_dir(&lines);
        let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
        let status = gateway.wait_exit(DEADLINE);
        let stderr = gateway.log();
        assert!(!status.success(), "{line}: the node must not start");
        let at = format!("kong.conf:{}: {key}", lines.len());
        assert!(stderr.contains(&at), "{line}: names file, line and key: {stderr}");
        assert!(stderr.contains(&format!("`{flag}`")), "{line}: names the flag: {stderr}");
    }
}

#[test]
fn keepalive_and_socket_flags_reach_the_admin_socket() {
    let ports = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&conf(ports, "reuseport backlog=64 so_keepalive=75:15:4 bind", "", &[]));
    let _gateway = start(dir.path(), &[]);
    let admin = at(ports.1);
    let ss = |args: &[&str]| {
        let out = std::process::Command::new("ss").args(args).output().expect("running ss");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let port = format!(":{}", admin.port());
    // A listening socket's Send-Q is its backlog.
    let listening = ss(&["-tlnH", "sport", "=", &port]);
    assert_eq!(listening.split_whitespace().nth(2), Some("64"), "{listening}");
    let _client = TcpStream::connect(admin).unwrap();
    // `ss` shows the keep-alive timer of the accepted connection, started from the idle time given.
    let timer = poll("the accepted connection in ss", DEADLINE, || {
        let text = ss(&["-tnoH", "state", "established", "sport", "=", &port]);
        text.contains("timer:").then_some(text)
    });
    assert!(timer.contains("timer:(keepalive,1min"), "a 75 s keep-alive timer: {timer}");
}

#[test]
fn writes_whose_clients_go_away_land_in_the_store_and_the_served_config_alike() {
    let ports = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&conf(ports, "", "", &[]));
    let gateway = start(dir.path(), &[]);
    let (admin, status) = (at(ports.1), at(ports.2));

    // Each client sends a whole write and leaves without reading the answer.
    for i in 0..40 {
        let mut stream = TcpStream::connect(admin).unwrap();
        let body = json!({"name": format!("s{i}"), "host": "a.test"}).to_string();
        write!(
            stream,
            "POST /services HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    // Whatever landed, the Admin API (the catalog) and the proxy (the status API) agree once quiet.
    let (count, hash) = poll("the writes to settle", DEADLINE, || {
        let listed = get(admin, "/services?size=1000").json()["data"].as_array()?.len();
        let admin_hash = get(admin, "/status").json()["configuration_hash"].clone();
        let served = get(status, "/status").json()["configuration_hash"].clone();
        std::thread::sleep(Duration::from_millis(200));
        let again = get(admin, "/services?size=1000").json()["data"].as_array()?.len();
        (listed == again && admin_hash == served).then_some((listed, served))
    });
    drop(gateway);
    let _gateway = start(dir.path(), &[]);
    assert_eq!(get(admin, "/services?size=1000").json()["data"].as_array().unwrap().len(), count);
    assert_eq!(get(status, "/status").json()["configuration_hash"], hash, "the store holds what was served");
}

/// CPU time (clock ticks) used so far by each thread name of process `pid`.
fn cpu_by_thread_name(pid: u32) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // `pid (comm) state ...`: the comm may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map(|(_, n)| n.to_string()).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(name).or_default() += ticks;
    }
    out
}

#[test]
fn admin_work_runs_off_the_proxy_workers() {
    let ports = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&conf(ports, "", "", &[]));
    let gateway = start(dir.path(), &[]);
    let admin = at(ports.1);
    let document = |version: usize| {
        let services: Vec<Value> = (0..150)
            .map(|i| {
                json!({"name": format!("s{i}"), "host": format!("h{i}.test"), "tags": [format!("v{version}")],
                       "routes": [{"name": format!("r{i}"), "paths": [format!("/p{i}/v{version}")], "hosts": [format!("x{i}.test")]}]})
            })
            .collect();
        json!({"_format_version": "3.0", "services": services})
    };

    let before = cpu_by_thread_name(gateway.pid());
    for version in 0..16 {
        let answer = http_json(admin, "POST", "/config", &document(version));
        assert_eq!(answer.status, 201, "{answer:?}");
        assert_eq!(get(admin, "/services?size=1000").status, 200);
    }
    let after = cpu_by_thread_name(gateway.pid());
    let spent = |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    let control = spent("gw-control");
    let proxy = spent("gateway");
    eprintln!("CPU ticks while configuring: control threads {control}, proxy threads {proxy}; all: {after:?}");
    assert!(control >= 20, "the Admin API's work shows on the control threads: {control} ticks");
    assert!(proxy * 10 <= control, "the proxy's threads stayed idle: {proxy} ticks against {control}");
}
