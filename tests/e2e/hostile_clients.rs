//! Hostile and careless clients against the proxy: paths and Hosts that must never reach an
//! upstream, forwarding headers nobody vouches for, clients that are slow, stall, stop reading or
//! send too much, upgrades other than WebSocket, and HTTP/2 where it was not asked for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gateway_tests::{DEADLINE, DbLess, EchoServer, http_request, http_send, poll};

/// Writes `bytes` on a new connection and reads until the gateway closes it (or 20 s pass).
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Whether the gateway closes `stream` (EOF or reset) within the deadline, reading and
/// discarding whatever comes first.
fn closed_by_gateway(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    while start.elapsed() < DEADLINE {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn strip_node(echo: &EchoServer, extra: &[String]) -> DbLess {
    let yaml = format!(
        "_format_version: '3.0'\n\
         services:\n\
         - name: api\n  url: http://{echo}/api/v1\n  routes:\n  - name: public\n    paths: [/public]\n\
         - name: api-slash\n  url: http://{echo}/api/v1/\n  routes:\n  - name: v1\n    paths: [/v1pub]\n    path_handling: v1\n\
         - name: root\n  url: http://{echo}\n  read_timeout: 1000\n  routes:\n  - name: root\n    paths: [/]\n    strip_path: false\n",
        echo = echo.addr
    );
    DbLess::start(&yaml, extra)
}

#[test]
fn hostile_paths_get_400_and_never_reach_the_upstream() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &[]);
    let ok = http_request(node.proxy, "GET", "/public/ok", &[]).unwrap();
    assert_eq!((ok.status, ok.json()["path"].as_str()), (200, Some("/api/v1/ok")), "{ok:?}");
    let seen = echo.seen.load(Ordering::SeqCst);

    for path in [
        // Bad escapes and bytes: the router's normaliser used to trap on the first one.
        "/%a\u{e9}",
        "/public/%zz",
        "/public/%4",
        "/public/%FF",
        // Stripping `/public` would leave a dot segment under /api/v1 (path_handling v0).
        "/public../admin",
        "/public%2e%2e/admin",
        "/public%2E./admin",
        "/public..%2fadmin",
        "/public..\\admin",
        "/public..;/admin",
        "/public/..;/admin",
        // path_handling v1 with a service path ending in `/`.
        "/v1pub../admin",
        "/v1pub%2e%2e/admin",
        "/v1pub..;/admin",
        // No stripping: a `..;` segment servlet containers read as `..`.
        "/x/..;/admin",
    ] {
        let reply = http_request(node.proxy, "GET", path, &[("Accept", "application/json")]).unwrap();
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
        assert_eq!(reply.json()["message"], "Bad request");
    }
    assert_eq!(echo.seen.load(Ordering::SeqCst), seen, "none of them reached the upstream");
    assert!(!node.gateway.log().contains("trapped"), "{}", node.gateway.log());
    let reply = http_request(node.proxy, "GET", "/v1pub/fine", &[]).unwrap();
    assert_eq!((reply.status, reply.json()["path"].as_str()), (200, Some("/api/v1/fine")));
}

#[test]
fn hosts_that_are_not_names_get_400() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &[]);
    for host in ["evil.com#.example.com", "a b.test", "user@a.test", "a.test:99999", "a.test:x", "[::1"] {
        let reply = http_request(node.proxy, "GET", "/public/x", &[("Host", host)]).unwrap();
        assert_eq!(reply.status, 400, "{host}: {reply:?}");
    }
    assert_eq!(echo.seen.load(Ordering::SeqCst), 0);
    let two = raw(node.proxy, b"GET /public/x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&two), 400, "{two}");
    let none = raw(node.proxy, b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&none), 400, "{none}");
    let good = http_request(node.proxy, "GET", "/public/x", &[("Host", "A-b_c.test:8000")]).unwrap();
    assert_eq!(good.status, 200);
    assert_eq!(good.json()["headers"]["x-forwarded-host"], "A-b_c.test");
}

const CLAIMS: [(&str, &str); 8] = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.test"),
    ("X-Forwarded-Port", "1"),
    ("X-Forwarded-Path", "/evil"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X-Real-IP", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6"),
];

#[test]
fn an_untrusted_clients_forwarding_headers_are_replaced() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &[]);
    let reply = http_request(node.proxy, "GET", "/public/x", &CLAIMS).unwrap();
    let h = &reply.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "127.0.0.1");
    assert_eq!(h["x-forwarded-port"], node.proxy.port().to_string());
    assert_eq!(h["x-forwarded-path"], "/public/x");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert!(h.get("x-forwarded-prefix").is_none() && h.get("forwarded").is_none(), "{h}");
}

#[test]
fn a_trusted_proxys_forwarding_headers_are_kept_and_appended() {
    let echo = EchoServer::start();
    let node = strip_node(
        &echo,
        &[
            "trusted_ips = 10.0.0.0/8, 127.0.0.1".into(),
            "real_ip_header = X-Forwarded-For".into(),
            "real_ip_recursive = on".into(),
        ],
    );
    let mut claims = CLAIMS.to_vec();
    claims[0] = ("X-Forwarded-For", "6.6.6.6, 10.1.2.3");
    let reply = http_request(node.proxy, "GET", "/public/x", &claims).unwrap();
    let h = &reply.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-real-ip"], "6.6.6.6", "the last untrusted address of real_ip_header");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "evil.test");
    assert_eq!(h["x-forwarded-port"], "1");
    assert_eq!(h["x-forwarded-path"], "/evil");
    assert_eq!(h["x-forwarded-prefix"], "/evil");
    assert_eq!(h["forwarded"], "for=6.6.6.6");
}

fn limits() -> Vec<String> {
    vec![
        "nginx_http_client_header_timeout = 1s".into(),
        "nginx_http_client_body_timeout = 1s".into(),
        "nginx_http_keepalive_timeout = 1s".into(),
        "nginx_http_send_timeout = 1s".into(),
        "nginx_http_client_max_body_size = 1k".into(),
    ]
}

#[test]
fn a_client_that_sends_its_head_slowly_is_closed() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &limits());
    let mut stream = TcpStream::connect(node.proxy).unwrap();
    stream.write_all(b"GET /public/x HTTP/1.1\r\nHost: a.test\r\n").unwrap();
    let started = Instant::now();
    assert!(closed_by_gateway(&mut stream), "the connection stays open");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before its timer ran out");
    assert_eq!(echo.seen.load(Ordering::SeqCst), 0);
}

#[test]
fn a_client_that_stalls_its_body_gets_408_and_frees_the_upstream_connection() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &limits());
    let mut stream = TcpStream::connect(node.proxy).unwrap();
    stream.write_all(b"POST /public/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("Request timeout"), "{answer}");
    poll("the upstream connection to be closed", DEADLINE, || (echo.open.load(Ordering::SeqCst) == 0).then_some(()));
}

#[test]
fn an_idle_keepalive_connection_is_closed() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &limits());
    let mut stream = TcpStream::connect(node.proxy).unwrap();
    stream.write_all(b"GET /public/x HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&answer[..n])), 200);
    let idle_since = Instant::now();
    assert!(closed_by_gateway(&mut stream), "the idle connection stays open");
    assert!(idle_since.elapsed() >= Duration::from_millis(900), "closed before keepalive_timeout");
}

#[test]
fn a_client_that_stops_reading_is_cut_and_frees_the_upstream_connection() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &limits());
    let mut stream = TcpStream::connect(node.proxy).unwrap();
    // Far more than the socket buffers hold: the gateway's writes stall.
    stream.write_all(b"GET /bytes/1000000000 HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    poll("the upstream to start sending", DEADLINE, || (echo.seen.load(Ordering::SeqCst) == 1).then_some(()));
    poll("the upstream connection to be closed", DEADLINE, || (echo.open.load(Ordering::SeqCst) == 0).then_some(()));
    drop(stream);
}

#[test]
fn bodies_over_the_limit_get_413() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &limits());
    let big = vec![b'x'; 2000];
    let declared = http_send(node.proxy, "POST", "/public/x", &[], Some(&big)).unwrap();
    assert_eq!(declared.status, 413, "{declared:?}");
    // No Accept, no Content-Type: Kong's error page in error_default_type (text/plain).
    assert!(declared.body.starts_with("Payload too large\nrequest_id: "), "{declared:?}");
    assert_eq!(echo.seen.load(Ordering::SeqCst), 0, "refused before the upstream");
    let mut chunked =
        b"POST /public/x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = raw(node.proxy, &chunked);
    assert_eq!(status_of(&streamed), 413, "{streamed}");
    let small = http_send(node.proxy, "POST", "/public/x", &[], Some(&big[..1000])).unwrap();
    assert_eq!((small.status, small.json()["body_len"].as_u64()), (200, Some(1000)));
}

#[test]
fn heads_over_the_limit_get_431() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &["nginx_http_large_client_header_buffers = 2 8k".into()]);
    let big = "v".repeat(20_000);
    let reply = http_request(node.proxy, "GET", "/public/x", &[("X-Big", &big)]).unwrap();
    assert_eq!(reply.status, 431, "{reply:?}");
    let fits = "v".repeat(8_000);
    assert_eq!(http_request(node.proxy, "GET", "/public/x", &[("X-Fits", &fits)]).unwrap().status, 200);
}

#[test]
fn only_websocket_upgrades_are_forwarded_and_idle_tunnels_close() {
    let echo = EchoServer::start();
    let node = strip_node(&echo, &[]);
    for protocol in ["h2c", "TLS/1.2", "foo"] {
        let reply = http_request(node.proxy, "GET", "/x", &[("Upgrade", protocol), ("Connection", "Upgrade")]).unwrap();
        assert_eq!(reply.status, 200, "{protocol}: {reply:?}");
        assert!(reply.json()["headers"].get("upgrade").is_none(), "{protocol} reached the upstream");
    }
    let mut stream = TcpStream::connect(node.proxy).unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n")
        .unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = vec![0u8; 4096];
    let n = stream.read(&mut head).unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&head[..n])), 101);
    stream.write_all(b"ping").unwrap();
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping");
    // The service's read_timeout is 1 s: an idle tunnel is closed after it.
    let idle_since = Instant::now();
    assert!(closed_by_gateway(&mut stream), "the idle tunnel stays open");
    assert!(idle_since.elapsed() >= Duration::from_millis(900));
}

#[test]
fn http2_is_spoken_in_plain_text_only_with_the_http2_flag() {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let echo = EchoServer::start();
    let node = strip_node(&echo, &[]);
    let answer = raw(node.proxy, PREFACE);
    assert!(!answer.as_bytes().starts_with(b"\x00"), "an HTTP/2 frame from a listener without http2: {answer:?}");
    let port = gateway_tests::free_port();
    let h2 = DbLess::start_at(port, "_format_version: '3.0'\n", &[format!("proxy_listen = 127.0.0.1:{port} http2")]);
    let mut stream = TcpStream::connect(h2.proxy).unwrap();
    stream.write_all(PREFACE).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut frame = [0u8; 9];
    stream.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 0x4, "a SETTINGS frame: {frame:?}");
}

#[test]
fn http2_cookies_reach_an_http1_upstream_as_one_header() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let echo = EchoServer::start();
    let port = gateway_tests::free_port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
        echo.addr
    );
    let node = DbLess::start_at(port, &yaml, &[format!("proxy_listen = 127.0.0.1:{port} http2")]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let seen = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(node.proxy).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::get(format!("http://a.test:{port}/c"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    });
    assert_eq!(seen["headers"]["cookie"], "a=1; b=2", "{seen}");
}

#[test]
fn a_route_with_snis_never_matches_a_tls_request_without_sni() {
    use std::sync::Arc;
    let echo = EchoServer::start();
    let port = gateway_tests::free_port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/], protocols: [https], snis: [localhost]}}]\n",
        echo.addr
    );
    let node = DbLess::start_at(port, &yaml, &[format!("proxy_listen = 127.0.0.1:{port} ssl")]);
    // The node's self-signed default certificate (for `localhost`) is the only root the client trusts.
    let default = std::fs::read(node.dir.path().join("servroot/ssl/default.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&default) {
        roots.add(cert.unwrap()).unwrap();
    }
    let ask = |sni: bool| {
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
        config.enable_sni = sni;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(node.proxy).unwrap());
        tls.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        status_of(&String::from_utf8_lossy(&out))
    };
    assert_eq!(ask(true), 200, "with SNI localhost");
    assert_eq!(ask(false), 404, "without SNI");
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the command name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    let mut node = DbLess::start("_format_version: '3.0'\n", &[]);
    let pid = node.gateway.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limit = format!("--nofile={}:{}", open + 8, open + 8);
    let lowered = std::process::Command::new("prlimit").args(["--pid", &pid.to_string(), &limit]).status().unwrap();
    assert!(lowered.success());
    // More connections than descriptors left: the rest wait in the backlog while accept fails.
    let clients: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(node.proxy).unwrap()).collect();
    node.gateway.wait_for_log("accept failed; backing off");
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2)); // the window measured, not a wait for a condition
    let spent = cpu_ticks(pid) - before;
    // A spinning loop burns a whole core: ~200 ticks in 2 s.
    assert!(spent < 40, "{spent} ticks of CPU in 2 s while out of descriptors");
    assert_eq!(node.gateway.log().matches("accept failed").count(), 1, "said once: {}", node.gateway.log());
    drop(clients);
    let reply = poll("a request to be served again", DEADLINE, || http_request(node.proxy, "GET", "/", &[]).ok());
    assert_eq!(reply.status, 404);
    node.gateway.wait_for_log("accepting connections again");
}

#[test]
fn a_client_that_never_finishes_its_tls_handshake_is_closed() {
    let port = gateway_tests::free_port();
    let node = DbLess::start_at(port, "_format_version: '3.0'\n", &[format!("proxy_listen = 127.0.0.1:{port} ssl")]);
    let lived = gateway_tests::silent_connection_lifetime(node.proxy);
    assert!(lived >= Duration::from_secs(9), "closed after the handshake timeout, not before");
}

#[test]
fn keepalive_timeout_and_header_timeout_are_separate_clocks() {
    let echo = EchoServer::start();
    let node = strip_node(
        &echo,
        &["nginx_http_client_header_timeout = 1s".into(), "nginx_http_keepalive_timeout = 4s".into()],
    );
    let mut stream = TcpStream::connect(node.proxy).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = vec![0u8; 4096];
    for round in 0..2 {
        if round == 1 {
            // Idle for longer than the head timeout, well within the keep-alive timeout: this is
            // the scenario, not a wait for a condition.
            std::thread::sleep(Duration::from_millis(2000));
        }
        stream.write_all(b"GET /public/x HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
        let n = stream.read(&mut answer).unwrap();
        assert_eq!(status_of(&String::from_utf8_lossy(&answer[..n])), 200, "round {round}");
    }
    // A head started and never finished is still cut at the head timeout.
    stream.write_all(b"GET /public/x HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    assert!(closed_by_gateway(&mut stream));
    assert!(started.elapsed() < Duration::from_millis(3500), "cut by the head clock, not keep-alive");
}

#[test]
fn an_http2_client_that_stops_reading_is_cut_and_frees_the_upstream_connection() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let echo = EchoServer::start();
    let port = gateway_tests::free_port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
        echo.addr
    );
    let node = DbLess::start_at(
        port,
        &yaml,
        &[format!("proxy_listen = 127.0.0.1:{port} http2"), "nginx_http_send_timeout = 1s".into()],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _held = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(node.proxy).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::get(format!("http://a.test:{port}/bytes/1000000000"))
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        // The body is never read: the stream's flow-control window fills and stays full.
        (sender, response)
    });
    poll("the upstream to start sending", DEADLINE, || (echo.seen.load(Ordering::SeqCst) == 1).then_some(()));
    poll("the upstream connection to be closed", DEADLINE, || (echo.open.load(Ordering::SeqCst) == 0).then_some(()));
}
