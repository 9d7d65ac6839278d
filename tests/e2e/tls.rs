//! TLS on the proxy: the certificate is chosen by SNI from the declarative `certificates` (exact
//! and wildcard names), unknown names get the node's self-signed default, and ALPN gives HTTP/2.
//! The client verifies every certificate against the test CA and the name it asked for, so a
//! handshake that succeeds proves which certificate was presented.

use std::net::SocketAddr;
use std::sync::Arc;

use gateway_tests::pki::{Pem, TestCa};
use gateway_tests::{DbLess, EchoServer, free_port, http_request};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

fn certificate_yaml(pem: &Pem, snis: &[&str]) -> String {
    format!(
        "- cert: {}\n  key: {}\n  snis: {}\n",
        serde_json::to_string(&pem.cert).unwrap(),
        serde_json::to_string(&pem.key).unwrap(),
        serde_json::to_string(snis).unwrap()
    )
}

struct Answer {
    alpn: Option<String>,
    status: u16,
    seen: serde_json::Value,
}

/// One GET over TLS with `sni`, HTTP/2 when ALPN picks it, else HTTP/1.1.
async fn get(addr: SocketAddr, sni: &str, config: rustls::ClientConfig, path: &str) -> Result<Answer, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
    let request = hyper::Request::get(format!("https://{sni}{path}")).body(Empty::<Bytes>::new()).unwrap();
    let response = if alpn.as_deref() == Some("h2") {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(request).await
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(hyper::header::HOST, sni.parse().unwrap());
        sender.send_request(hyper::Request::from_parts(parts, body)).await
    }
    .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let seen = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok(Answer { alpn, status, seen })
}

#[test]
fn tls_listeners_pick_the_certificate_by_sni_and_speak_http2() {
    let echo = EchoServer::start();
    let ca = TestCa::new("proxy test CA");
    let (a, b) = (ca.server(&["a.test"]), ca.server(&["b.test", "*.wild.test"]));
    let port = free_port();
    let yaml = format!(
        "_format_version: '3.0'\ncertificates:\n{}{}services:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/], protocols: [https]}}]\n",
        certificate_yaml(&a, &["a.test"]),
        certificate_yaml(&b, &["b.test", "*.wild.test"]),
        echo.addr
    );
    let node = DbLess::start_at(port, &yaml, &[format!("proxy_listen = 127.0.0.1:{port} ssl http2")]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let answer = get(node.proxy, "a.test", ca.client_config(&["h2", "http/1.1"]), "/one").await.unwrap();
        assert_eq!(answer.alpn.as_deref(), Some("h2"));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.seen["path"], "/one");
        assert_eq!(answer.seen["headers"]["x-forwarded-proto"], "https");
        assert_eq!(answer.seen["headers"]["x-forwarded-host"], "a.test");

        // The wildcard SNI and the other certificate; HTTP/1.1 when the client offers only that.
        let answer = get(node.proxy, "x.wild.test", ca.client_config(&["http/1.1"]), "/two").await.unwrap();
        assert_eq!(answer.alpn.as_deref(), Some("http/1.1"));
        assert_eq!((answer.status, &answer.seen["path"]), (200, &serde_json::json!("/two")));
        get(node.proxy, "b.test", ca.client_config(&["h2"]), "/three").await.unwrap();

        // A name no certificate covers gets the self-signed default, which this CA did not sign.
        let refused = get(node.proxy, "other.test", ca.client_config(&["h2"]), "/").await.err().unwrap();
        assert!(refused.contains("invalid peer certificate"), "{refused}");
    });
    let default = node.dir.path().join("servroot/ssl/default.crt");
    assert!(default.is_file(), "the default certificate is kept in the prefix");
}

#[test]
fn without_the_http2_flag_tls_listeners_offer_only_http1() {
    let echo = EchoServer::start();
    let ca = TestCa::new("proxy test CA");
    let a = ca.server(&["a.test"]);
    let port = free_port();
    let yaml = format!(
        "_format_version: '3.0'\ncertificates:\n{}services:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
        certificate_yaml(&a, &["a.test"]),
        echo.addr
    );
    let node = DbLess::start_at(port, &yaml, &[format!("proxy_listen = 127.0.0.1:{port} ssl")]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let answer = get(node.proxy, "a.test", ca.client_config(&["h2", "http/1.1"]), "/x").await.unwrap();
        assert_eq!(answer.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(answer.status, 200);
    });
}

#[test]
fn https_upstreams_are_verified_against_the_trusted_roots() {
    let ca = TestCa::new("upstream CA");
    let pem = ca.server(&["localhost"]);
    let upstream = EchoServer::start_tls(&pem.cert, &pem.key);
    let port = upstream.addr.port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n\
         - {{name: named, url: 'https://localhost:{port}/base', routes: [{{name: named, paths: [/named]}}]}}\n\
         - {{name: by-ip, url: 'https://127.0.0.1:{port}', routes: [{{name: by-ip, paths: [/ip]}}]}}\n"
    );
    let dir_lines = ["lua_ssl_trusted_certificate = upstream-ca.pem".to_string()];
    let proxy_port = free_port();
    let dir = DbLess::dir(proxy_port, &yaml, &dir_lines);
    std::fs::write(dir.path().join("upstream-ca.pem"), ca.cert_pem()).unwrap();
    let mut gateway = gateway_tests::Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    gateway.wait_for_log("gateway started");
    let proxy = SocketAddr::from(([127, 0, 0, 1], proxy_port));

    let reply = http_request(proxy, "GET", "/named/x", &[]).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["path"], "/base/x");
    assert_eq!(reply.json()["headers"]["host"], format!("localhost:{port}"));
    // Kept alive: the second request reuses the pooled TLS connection.
    assert_eq!(http_request(proxy, "GET", "/named/y", &[]).unwrap().status, 200);

    // The certificate names localhost, not 127.0.0.1.
    let reply = http_request(proxy, "GET", "/ip", &[]).unwrap();
    assert_eq!(reply.status, 502, "{reply:?}");
    gateway.wait_for_log(&format!("TLS handshake with 127.0.0.1:{port} as 127.0.0.1"));
    assert!(gateway.log().contains("certificate not valid for name \"127.0.0.1\""), "{}", gateway.log());
    drop(gateway);

    // With only the system store, the private CA is not trusted.
    let node = DbLess::start(&yaml, &[]);
    let reply = http_request(node.proxy, "GET", "/named/x", &[]).unwrap();
    assert_eq!(reply.status, 502, "{reply:?}");
    let mut gateway = node.gateway;
    gateway.wait_for_log("UnknownIssuer");
}

/// What `openssl s_client` says of a handshake with the proxy at `port` (its extra `args`).
fn s_client(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "unknown.test"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn established(said: &str) -> bool {
    said.contains("Cipher is ") && !said.contains("Cipher is (NONE)")
}

fn tls_node(extra: &[String]) -> (DbLess, u16) {
    let tls = free_port();
    let mut lines = vec![format!("proxy_listen = 127.0.0.1:{}, 127.0.0.1:{tls} ssl", free_port())];
    lines.extend_from_slice(extra);
    (DbLess::start("_format_version: '3.0'\n", &lines), tls)
}

#[test]
fn kongs_tls_settings_decide_versions_suites_and_the_default_certificate() {
    // Kong's defaults (intermediate): TLS 1.2 and 1.3.
    let (node, port) = tls_node(&[]);
    assert!(established(&s_client(port, &["-tls1_2"])), "{}", s_client(port, &["-tls1_2"]));
    assert!(s_client(port, &["-tls1_3"]).contains("TLSv1.3"));
    drop(node);
    // modern: TLS 1.3 only.
    let (node, port) = tls_node(&["ssl_cipher_suite = modern".into()]);
    assert!(!established(&s_client(port, &["-tls1_2"])), "modern refuses TLS 1.2");
    assert!(established(&s_client(port, &["-tls1_3"])));
    drop(node);
    // ssl_protocols narrows intermediate the same way.
    let (node, port) = tls_node(&["ssl_protocols = TLSv1.3".into()]);
    assert!(!established(&s_client(port, &["-tls1_2"])));
    drop(node);
    // custom: only the TLS 1.2 suites named (the default certificate is ECDSA).
    let (node, port) =
        tls_node(&["ssl_cipher_suite = custom".into(), "ssl_ciphers = ECDHE-ECDSA-AES256-GCM-SHA384".into()]);
    let named = s_client(port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
    assert!(named.contains("ECDHE-ECDSA-AES256-GCM-SHA384") && established(&named), "{named}");
    assert!(!established(&s_client(port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])));
    drop(node);

    // Session tickets: on by default (a TLS 1.2 session resumes from its ticket), off on request.
    let (node, port) = tls_node(&[]);
    let session = tempfile::NamedTempFile::new().unwrap();
    let file = session.path().to_str().unwrap();
    let first = s_client(port, &["-tls1_2", "-sess_out", file]);
    assert!(first.contains("TLS session ticket lifetime hint: 86400"), "Kong's 1d: {first}");
    assert!(s_client(port, &["-tls1_2", "-sess_in", file]).contains("Reused"), "resumed");
    drop(node);
    let (node, port) = tls_node(&["ssl_session_tickets = off".into()]);
    assert!(!s_client(port, &["-tls1_2"]).contains("TLS session ticket lifetime hint"), "no ticket");
    drop(node);
    // ssl_session_timeout: a session resumes within it, from a ticket or (tickets off) the
    // server's cache, and not after it (time has to pass: there is nothing to poll).
    for tickets in ["on", "off"] {
        let (node, port) = tls_node(&["ssl_session_timeout = 2s".into(), format!("ssl_session_tickets = {tickets}")]);
        let first = s_client(port, &["-tls1_2", "-sess_out", file]);
        assert_eq!(first.contains("TLS session ticket lifetime hint: 2 "), tickets == "on", "{first}");
        assert!(s_client(port, &["-tls1_2", "-sess_in", file]).contains("Reused"), "tickets {tickets}: resumed");
        std::thread::sleep(std::time::Duration::from_millis(3200));
        let late = s_client(port, &["-tls1_2", "-sess_in", file]);
        assert!(established(&late) && !late.contains("Reused"), "tickets {tickets}: expired: {late}");
        drop(node);
    }

    // ssl_cert / ssl_cert_key: served when no certificate entity matches.
    let ca = TestCa::new("default-ca");
    let pem = ca.server(&["default.example.test"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.crt"), &pem.cert).unwrap();
    std::fs::write(dir.path().join("default.key"), &pem.key).unwrap();
    let (node, port) = tls_node(&[
        format!("ssl_cert = {}", dir.path().join("default.crt").display()),
        format!("ssl_cert_key = {}", dir.path().join("default.key").display()),
    ]);
    let said = s_client(port, &[]);
    assert!(said.contains("default.example.test"), "{said}");
    drop(node);
}

#[test]
fn tls_settings_rustls_cannot_honour_are_refused_by_name() {
    for (line, reason) in [
        ("ssl_protocols = TLSv1.1 TLSv1.2", "`TLSv1.1` is not available"),
        ("ssl_cipher_suite = old", "rustls does not have"),
        ("ssl_ciphers = DES-CBC3-SHA", "`DES-CBC3-SHA` is not available"),
    ] {
        let (dir, _) = gateway_tests::conf_dir(&[line.to_string()]);
        let out = gateway_tests::run(dir.path(), &["check", "kong.conf"], &[]);
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert!(gateway_tests::stderr(&out).contains(reason), "{line}: {}", gateway_tests::stderr(&out));
    }
}

/// nginx as an https upstream that requires a client certificate issued by `client_ca`
/// (`ssl_verify_client on`), answering `200 verified <subject>`.
fn nginx_mtls_upstream(dir: &std::path::Path, server: &Pem, client_ca: &str) -> gateway_tests::peers::Peer {
    let port = free_port();
    let home = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("server.crt"), &server.cert).unwrap();
    std::fs::write(home.join("server.key"), &server.key).unwrap();
    std::fs::write(home.join("clients.pem"), client_ca).unwrap();
    let conf = format!(
        "daemon off;\npid {home}/nginx.pid;\nerror_log {home}/error.log notice;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log {home}/access.log;\n  client_body_temp_path {home}/body;\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {home}/server.crt;\n    ssl_certificate_key {home}/server.key;\n\
             ssl_client_certificate {home}/clients.pem;\n    ssl_verify_client on;\n\
             location / {{ return 200 \"verified $ssl_client_s_dn\"; }}\n  }}\n}}\n",
        home = home.display()
    );
    std::fs::write(home.join("nginx.conf"), conf).unwrap();
    gateway_tests::peers::nginx(&home, port)
}

#[test]
fn client_ssl_presents_the_client_certificate_to_an_upstream_that_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("upstream-ca");
    let client_ca = TestCa::new("client-ca");
    let upstream = nginx_mtls_upstream(dir.path(), &server_ca.server(&["localhost"]), client_ca.root_pem());
    let client = client_ca.client("gateway-client");
    std::fs::write(dir.path().join("upstream-ca.pem"), server_ca.root_pem()).unwrap();
    std::fs::write(dir.path().join("client.crt"), &client.cert).unwrap();
    std::fs::write(dir.path().join("client.key"), &client.key).unwrap();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: mtls\n  url: https://localhost:{}\n  routes: [{{name: r, paths: [/]}}]\n",
        upstream.port
    );
    let trust = format!("lua_ssl_trusted_certificate = {}", dir.path().join("upstream-ca.pem").display());
    // Without it, nginx refuses the request (400: no required SSL certificate was sent).
    let node = DbLess::start(&yaml, std::slice::from_ref(&trust));
    let refused = http_request(node.proxy, "GET", "/", &[]).unwrap();
    assert_eq!(refused.status, 400, "{refused:?}");
    drop(node);
    let node = DbLess::start(
        &yaml,
        &[
            trust,
            "client_ssl = on".into(),
            format!("client_ssl_cert = {}", dir.path().join("client.crt").display()),
            format!("client_ssl_cert_key = {}", dir.path().join("client.key").display()),
        ],
    );
    let accepted = http_request(node.proxy, "GET", "/", &[]).unwrap();
    assert_eq!(accepted.status, 200, "{accepted:?}");
    assert!(accepted.body.starts_with("verified") && accepted.body.contains("gateway-client"), "{}", accepted.body);
}

#[test]
fn a_services_own_ca_certificates_and_client_certificate_reach_an_upstream_that_requires_mtls() {
    use gateway_tests::{DEADLINE, http_json, poll};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("upstream-ca");
    let client_ca = TestCa::new("client-ca");
    let upstream = nginx_mtls_upstream(dir.path(), &server_ca.server(&["localhost"]), client_ca.root_pem());
    let client = client_ca.client("service-client");
    // The shipped kong.conf: upstreams are verified against the system store only.
    let node = crate::admin::start(dir.path(), &[]);
    let admin = node.admin;
    let url = format!("https://localhost:{}", upstream.port);
    let created = |path: &str, body: serde_json::Value| {
        let answer = http_json(admin, "POST", path, &body);
        assert_eq!(answer.status, 201, "{path}: {answer:?}");
        answer.json()["id"].as_str().unwrap().to_string()
    };
    let ca = created("/ca_certificates", json!({"cert": server_ca.root_pem()}));
    let cert = created("/certificates", json!({"cert": client.cert, "key": client.key}));

    // What the gateway cannot honour is refused, with the field at fault.
    let refused = |body: serde_json::Value, field: &str, says: &str| {
        let answer = http_json(admin, "POST", "/services", &body);
        assert_eq!(answer.status, 400, "{answer:?}");
        let message = answer.json()["fields"][field].to_string();
        assert!(message.contains(says), "{field}: {}", answer.body);
    };
    refused(
        json!({"url": "http://localhost:1", "client_certificate": {"id": cert}}),
        "client_certificate",
        "unless protocol is https",
    );
    refused(json!({"url": url, "tls_verify": false}), "tls_verify", "always verified");
    refused(json!({"url": url, "tls_verify_depth": 2}), "tls_verify_depth", "not supported");
    refused(json!({"url": url, "ca_certificates": [uuid_like()]}), "ca_certificates", "no ca_certificate");

    created("/services", json!({"name": "node-trust", "url": url}));
    created("/services/node-trust/routes", json!({"paths": ["/node"]}));
    created(
        "/services",
        json!({"name": "own", "url": url, "tls_verify": true, "ca_certificates": [ca], "client_certificate": {"id": cert}}),
    );
    created("/services/own/routes", json!({"paths": ["/own"]}));
    let own = poll("the service's route to be served", DEADLINE, || {
        let answer = http_request(node.proxy, "GET", "/own", &[]).unwrap();
        (answer.status != 404).then_some(answer)
    });
    assert_eq!(own.status, 200, "{own:?}");
    assert!(own.body.starts_with("verified") && own.body.contains("service-client"), "{}", own.body);
    // The same upstream through the node's client: its CA is unknown (and the pooled connection
    // of the other service is not reused).
    assert_eq!(http_request(node.proxy, "GET", "/node", &[]).unwrap().status, 502);
    let shown = http_request(admin, "GET", "/services/own", &[]).unwrap().json();
    assert_eq!(shown["ca_certificates"], json!([ca]));
    assert_eq!(shown["client_certificate"], json!({"id": cert}));

    // Named by a service, neither certificate can be deleted.
    for path in [format!("/certificates/{cert}"), format!("/ca_certificates/{ca}")] {
        let answer = http_request(admin, "DELETE", &path, &[]).unwrap();
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert!(answer.body.contains("an existing 'services' entity references"), "{}", answer.body);
    }
    // Without its client certificate, the upstream refuses the request.
    let patched = http_json(admin, "PATCH", "/services/own", &json!({"client_certificate": null}));
    assert_eq!(patched.status, 200, "{patched:?}");
    let refused = poll("the service's change to be served", DEADLINE, || {
        let answer = http_request(node.proxy, "GET", "/own", &[]).unwrap();
        (answer.status != 200).then_some(answer)
    });
    assert_eq!(refused.status, 400, "nginx: no required SSL certificate was sent: {refused:?}");
    assert_eq!(http_request(admin, "DELETE", &format!("/certificates/{cert}"), &[]).unwrap().status, 204);
}

fn uuid_like() -> String {
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8".to_string()
}

#[test]
fn certificates_written_as_vault_references_are_resolved_by_the_node_that_serves_them() {
    use gateway_tests::{Gateway, http_json};
    use serde_json::json;
    let echo = EchoServer::start();
    let ca = TestCa::new("vault CA");
    let pem = ca.server(&["vault.test"]);
    let key_json = json!({"key": pem.key}).to_string();
    let env = [("GW_VAULT_CERT", pem.cert.as_str()), ("GW_TLS", key_json.as_str())];
    let (cert_ref, key_ref) = ("{vault://env/gw-vault-cert}", "{vault://env/gw-tls/key}");

    // DB-less: the declarative file holds references only; the node resolves them at load.
    let port = free_port();
    let yaml = format!(
        "_format_version: '3.0'\ncertificates:\n- cert: '{cert_ref}'\n  key: '{key_ref}'\n  snis: [vault.test]\n\
         services:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/], protocols: [https]}}]\n",
        echo.addr
    );
    let dir = DbLess::dir(port, &yaml, &[format!("proxy_listen = 127.0.0.1:{port} ssl")]);
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &env);
    gateway.wait_for_log("gateway started");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let answer = runtime.block_on(get(proxy, "vault.test", ca.client_config(&["http/1.1"]), "/")).unwrap();
    assert_eq!(answer.status, 200, "the certificate from the environment is served");
    assert!(!gateway.log().contains("PRIVATE KEY"), "{}", gateway.log());
    drop(gateway);
    // Without the variable, the start fails naming the certificate's reference and the variable.
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &env[1..]);
    assert!(!gateway.wait_exit(gateway_tests::DEADLINE).success());
    let log = gateway.log();
    assert!(log.contains(cert_ref) && log.contains("GW_VAULT_CERT is not set"), "{log}");

    // A traditional node stores and shows the references, and refuses one it cannot resolve.
    let home = tempfile::tempdir().unwrap();
    let node = crate::admin::start(home.path(), &env);
    let created = http_json(node.admin, "POST", "/certificates", &json!({"cert": cert_ref, "key": key_ref}));
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json()["id"].as_str().unwrap().to_string();
    let shown = http_request(node.admin, "GET", &format!("/certificates/{id}"), &[]).unwrap().json();
    assert_eq!((shown["cert"].as_str(), shown["key"].as_str()), (Some(cert_ref), Some(key_ref)));
    let unset = http_json(node.admin, "POST", "/certificates", &json!({"cert": "{vault://env/nope}", "key": key_ref}));
    assert_eq!(unset.status, 400, "{unset:?}");
    assert!(unset.json()["fields"]["cert"].as_str().unwrap().contains("NOPE is not set"), "{}", unset.body);
    let other = http_json(node.admin, "POST", "/certificates", &json!({"cert": "{vault://aws/x}", "key": key_ref}));
    assert_eq!(other.status, 400, "{other:?}");
    assert!(other.body.contains("only the env vault"), "{}", other.body);
}
