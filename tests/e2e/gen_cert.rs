//! `gateway hybrid gen_cert`: the files, their modes, no overwrite, validity, and that the pair
//! really authenticates both ends of a rustls mutual-TLS handshake.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use gateway::cluster::tls::{shared_client_config, shared_server_config, shared_server_name};
use gateway::conf::PemSource;
use gateway::tls::pinned::{Pin, PinnedVerifier};
use gateway::tls::provider;
use gateway_tests::{run, stderr};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn days_valid(cert: &Path) -> i64 {
    let der = PemSource::File(cert.to_path_buf()).load_certs().unwrap().remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let v = parsed.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
}

#[test]
fn writes_cluster_crt_0644_and_cluster_key_0600_valid_three_years() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["hybrid", "gen_cert"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (cert, key) = (dir.path().join("cluster.crt"), dir.path().join("cluster.key"));
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(days_valid(&cert), 1095);
}

#[test]
fn writes_to_given_paths_with_days() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["hybrid", "gen_cert", "a.crt", "a.key", "--days", "30"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(days_valid(&dir.path().join("a.crt")), 30);
    let out = run(dir.path(), &["hybrid", "gen_cert", "b.crt", "b.key", "-d", "7"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(days_valid(&dir.path().join("b.crt")), 7);
    assert_eq!(mode(&dir.path().join("b.key")), 0o600);

    let out = run(dir.path(), &["hybrid", "gen_cert", "c.crt", "c.key", "--days", "0"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--days must be at least 1"));
}

#[test]
fn refuses_to_overwrite_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.key"), "precious").unwrap();
    let out = run(dir.path(), &["hybrid", "gen_cert"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cluster.key already exists. Will not overwrite it."), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("cluster.key")).unwrap(), "precious");
    assert!(!dir.path().join("cluster.crt").exists(), "nothing is written when one file exists");
}

#[test]
fn a_cert_path_without_a_key_path_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["hybrid", "gen_cert", "only.crt"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("only.crt").exists());
}

#[test]
fn openssl_reads_it_as_a_p384_kong_clustering_cert_for_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["hybrid", "gen_cert"], &[]).status.success());
    let out = Command::new("openssl")
        .args(["x509", "-in", "cluster.crt", "-noout", "-text"])
        .current_dir(dir.path())
        .output()
        .expect("openssl is installed by .ci/run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "Subject: CN = kong_clustering",
        "Issuer: CN = kong_clustering",
        "secp384r1",
        "DNS:kong_clustering",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "CA:FALSE",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}

struct Pair {
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
}

fn made_by_the_cli(dir: &Path, name: &str) -> Pair {
    let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
    assert!(run(dir, &["hybrid", "gen_cert", &cert, &key], &[]).status.success());
    Pair {
        chain: PemSource::File(dir.join(cert)).load_certs().unwrap(),
        key: PemSource::File(dir.join(key)).load_key().unwrap(),
    }
}

/// What each side of one handshake saw.
struct Outcome {
    /// The client's error, if any.
    client: Result<(), String>,
    /// The server's view of the client certificate, or its error.
    server: Result<Vec<u8>, String>,
}

/// One TLS handshake over loopback plus one message each way.
async fn handshake(server: ServerConfig, client: ClientConfig) -> Outcome {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let peer = tls.get_ref().1.peer_certificates().map(|c| c[0].to_vec()).unwrap_or_default();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await.map_err(|e| format!("write: {e}"))?;
        tls.shutdown().await.ok();
        Ok::<_, String>(peer)
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = async {
        let mut tls = connector.connect(shared_server_name(), tcp).await.map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        assert_eq!(&buf, b"pong");
        Ok::<_, String>(())
    }
    .await;
    Outcome { client, server: server.await.unwrap() }
}

#[tokio::test]
async fn the_pair_completes_mutual_tls_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let cp = made_by_the_cli(dir.path(), "cluster");
    let expected = cp.chain[0].to_vec();
    let server = shared_server_config(cp.chain.clone(), cp.key.clone_key()).unwrap();
    let client = shared_client_config(cp.chain, cp.key).unwrap();
    let outcome = handshake(server, client).await;
    outcome.client.unwrap();
    assert_eq!(outcome.server.unwrap(), expected, "the server saw the shared certificate as the client's");
}

#[tokio::test]
async fn a_data_plane_with_another_certificate_is_refused_by_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let cp = made_by_the_cli(dir.path(), "cp");
    let dp = made_by_the_cli(dir.path(), "dp");
    // The data plane trusts the control plane's certificate but presents its own.
    let trusts_cp = Arc::new(PinnedVerifier::new(Pin::of(&cp.chain[0]), provider()));
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(trusts_cp)
        .with_client_auth_cert(dp.chain, dp.key)
        .unwrap();
    let server = shared_server_config(cp.chain, cp.key).unwrap();
    let outcome = handshake(server, client).await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("Mismatch"), "{err}");
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn a_control_plane_with_another_certificate_is_refused_by_the_data_plane() {
    let dir = tempfile::tempdir().unwrap();
    let rogue = made_by_the_cli(dir.path(), "rogue");
    let cp = made_by_the_cli(dir.path(), "cp");
    let server = shared_server_config(rogue.chain, rogue.key).unwrap();
    let client = shared_client_config(cp.chain, cp.key).unwrap();
    let outcome = handshake(server, client).await;
    let err = outcome.client.unwrap_err();
    assert!(err.contains("Mismatch"), "{err}");
    assert!(outcome.server.is_err());
}
