//! TLS on the proxy: the certificate is chosen by SNI from the declarative `certificates` (exact
//! and wildcard names), unknown names get the node's self-signed default, and ALPN gives HTTP/2.
//! The client verifies every certificate against the test CA and the name it asked for, so a
//! handshake that succeeds proves which certificate was presented.

use std::net::SocketAddr;
use std::sync::Arc;

use gateway_tests::pki::{Pem, TestCa};
use gateway_tests::{DbLess, EchoServer, free_port};
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
