//! Certificate tooling for `cluster_mtls = pki`: `gateway hybrid gen_ca`, `gen_dp_cert` and
//! `gen_cp_cert` as an operator runs them, checked by openssl (chain, EKU, SAN, modes), and the
//! Admin API's `/clustering/dp-certificates` on a real control plane with a real data plane.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gateway::conf::PemSource;
use gateway_tests::{run, stderr};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed by .ci/run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn text_of(dir: &Path, cert: &str) -> String {
    let (ok, text) = openssl(dir, &["x509", "-in", cert, "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

fn days_valid(dir: &Path, cert: &str) -> i64 {
    let der = PemSource::File(dir.join(cert)).load_certs().unwrap().remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let v = parsed.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, &[]);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, &[]);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {}", stderr(&out));
    stderr(&out)
}

#[test]
fn gen_ca_writes_a_ten_year_ca_0644_with_its_key_0600() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["hybrid", "gen_ca"]);
    let (cert, key) = (dir.path().join("cluster_ca.crt"), dir.path().join("cluster_ca.key"));
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(days_valid(dir.path(), "cluster_ca.crt"), 3650);
    let text = text_of(dir.path(), "cluster_ca.crt");
    for needle in
        ["CA:TRUE", "Certificate Sign, CRL Sign", "Subject: CN = gateway cluster CA", "Issuer: CN = gateway cluster CA"]
    {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    // A self-signed CA verifies against itself.
    let (verified, out) = openssl(dir.path(), &["verify", "-CAfile", "cluster_ca.crt", "cluster_ca.crt"]);
    assert!(verified, "{out}");

    ok(dir.path(), &["hybrid", "gen_ca", "other.crt", "other.key", "--days", "400", "--name", "Acme cluster"]);
    assert_eq!(days_valid(dir.path(), "other.crt"), 400);
    assert!(text_of(dir.path(), "other.crt").contains("Subject: CN = Acme cluster"));
}

#[test]
fn leaves_signed_by_the_ca_verify_with_openssl_and_carry_the_right_eku_and_san() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["hybrid", "gen_ca"]);
    let ca = ["--ca-cert", "cluster_ca.crt", "--ca-key", "cluster_ca.key"];

    ok(d, &[&["hybrid", "gen_dp_cert"][..], &ca].concat());
    assert_eq!(mode(&d.join("cluster_dp.crt")), 0o644);
    assert_eq!(mode(&d.join("cluster_dp.key")), 0o600);
    assert_eq!(days_valid(d, "cluster_dp.crt"), 1095);
    let (verified, out) =
        openssl(d, &["verify", "-CAfile", "cluster_ca.crt", "-purpose", "sslclient", "cluster_dp.crt"]);
    assert!(verified, "{out}");
    let dp = text_of(d, "cluster_dp.crt");
    for needle in ["CA:FALSE", "TLS Web Client Authentication", "DNS:data-plane", "Issuer: CN = gateway cluster CA"] {
        assert!(dp.contains(needle), "missing {needle}:\n{dp}");
    }
    assert!(!dp.contains("TLS Web Server Authentication"), "a DP leaf is a client only:\n{dp}");
    let (as_server, _) =
        openssl(d, &["verify", "-CAfile", "cluster_ca.crt", "-purpose", "sslserver", "cluster_dp.crt"]);
    assert!(!as_server, "a DP leaf must not pass as a server certificate");

    ok(d, &[&["hybrid", "gen_dp_cert", "dp2.crt", "dp2.key", "--name", "dp-eu-1", "--days", "90"][..], &ca].concat());
    assert_eq!(days_valid(d, "dp2.crt"), 90);
    assert!(text_of(d, "dp2.crt").contains("DNS:dp-eu-1"));

    ok(
        d,
        &[&["hybrid", "gen_cp_cert", "--name", "cp.example.test,127.0.0.1", "--name", "cp2.example.test"][..], &ca]
            .concat(),
    );
    assert_eq!(mode(&d.join("cluster_cp.key")), 0o600);
    let (verified, out) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "cluster_ca.crt",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "cp2.example.test",
            "cluster_cp.crt",
        ],
    );
    assert!(verified, "{out}");
    let cp = text_of(d, "cluster_cp.crt");
    for needle in [
        "CA:FALSE",
        "TLS Web Server Authentication",
        "DNS:cp.example.test, IP Address:127.0.0.1, DNS:cp2.example.test",
        "Subject: CN = cp.example.test",
    ] {
        assert!(cp.contains(needle), "missing {needle}:\n{cp}");
    }
    assert!(!cp.contains("TLS Web Client Authentication"), "a CP leaf is a server only:\n{cp}");
    let (wrong_name, _) = openssl(
        d,
        &["verify", "-CAfile", "cluster_ca.crt", "-verify_hostname", "other.example.test", "cluster_cp.crt"],
    );
    assert!(!wrong_name, "the CP leaf must not be valid for a name it was not given");
}

#[test]
fn leaf_tools_refuse_to_overwrite_and_write_nothing_then() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["hybrid", "gen_ca"]);
    let before = std::fs::read(d.join("cluster_ca.key")).unwrap();
    let err = refused(d, &["hybrid", "gen_ca"]);
    assert!(err.contains("cluster_ca.crt already exists. Will not overwrite it."), "{err}");
    assert_eq!(std::fs::read(d.join("cluster_ca.key")).unwrap(), before);

    std::fs::write(d.join("cluster_dp.key"), "precious").unwrap();
    let err = refused(d, &["hybrid", "gen_dp_cert", "--ca-cert", "cluster_ca.crt", "--ca-key", "cluster_ca.key"]);
    assert!(err.contains("cluster_dp.key already exists. Will not overwrite it."), "{err}");
    assert_eq!(std::fs::read_to_string(d.join("cluster_dp.key")).unwrap(), "precious");
    assert!(!d.join("cluster_dp.crt").exists(), "nothing is written when one file exists");

    std::fs::write(d.join("taken.crt"), "precious").unwrap();
    let err = refused(
        d,
        &[
            "hybrid",
            "gen_cp_cert",
            "--ca-cert",
            "cluster_ca.crt",
            "--ca-key",
            "cluster_ca.key",
            "--name",
            "cp",
            "taken.crt",
            "new.key",
        ],
    );
    assert!(err.contains("taken.crt already exists. Will not overwrite it."), "{err}");
    assert!(!d.join("new.key").exists());
}

#[test]
fn a_bad_ca_is_refused_with_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["hybrid", "gen_ca"]);
    ok(d, &["hybrid", "gen_ca", "other_ca.crt", "other_ca.key"]);
    let sign = |ca_cert: &str, ca_key: &str| {
        refused(d, &["hybrid", "gen_dp_cert", "--ca-cert", ca_cert, "--ca-key", ca_key, "dp.crt", "dp.key"])
    };

    let err = sign("cluster_ca.crt", "other_ca.key");
    assert!(err.contains("other_ca.key is not the private key of the CA certificate cluster_ca.crt"), "{err}");

    // A leaf is no CA, even with its own key.
    ok(
        d,
        &["hybrid", "gen_dp_cert", "--ca-cert", "cluster_ca.crt", "--ca-key", "cluster_ca.key", "leaf.crt", "leaf.key"],
    );
    let err = sign("leaf.crt", "leaf.key");
    assert!(err.contains("leaf.crt is not a CA certificate"), "{err}");

    std::fs::write(d.join("garbage.key"), "not a key").unwrap();
    let err = sign("cluster_ca.crt", "garbage.key");
    assert!(err.contains("garbage.key: is not a usable private key"), "{err}");
    let err = sign("missing.crt", "cluster_ca.key");
    assert!(err.contains("cannot read missing.crt"), "{err}");
    let err = sign("cluster_ca.key", "cluster_ca.key");
    assert!(err.contains("cluster_ca.key: holds no PEM certificate"), "{err}");

    // A CA made by openssl with an SEC1 key: the message says how to convert it.
    let (made, out) = openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ossl.key",
            "-out",
            "ossl.crt",
            "-days",
            "30",
            "-subj",
            "/CN=openssl CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    assert!(made, "{out}");
    ok(d, &["hybrid", "gen_dp_cert", "--ca-cert", "ossl.crt", "--ca-key", "ossl.key", "o.crt", "o.key"]);
    let (verified, out) = openssl(d, &["verify", "-CAfile", "ossl.crt", "o.crt"]);
    assert!(verified, "a leaf signed by an openssl-made CA verifies: {out}");
    let (converted, out) = openssl(d, &["ec", "-in", "ossl.key", "-out", "sec1.key"]);
    assert!(converted, "{out}");
    let err = sign("ossl.crt", "sec1.key");
    assert!(err.contains("openssl pkcs8 -topk8 -nocrypt"), "{err}");

    assert!(!d.join("dp.crt").exists() && !d.join("dp.key").exists(), "no refusal wrote a file");
}

#[test]
fn gen_cp_cert_needs_a_valid_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["hybrid", "gen_ca"]);
    let out = run(d, &["hybrid", "gen_cp_cert", "--ca-cert", "cluster_ca.crt", "--ca-key", "cluster_ca.key"], &[]);
    assert_eq!(out.status.code(), Some(2), "--name is required: {}", stderr(&out));
    let err = refused(
        d,
        &[
            "hybrid",
            "gen_cp_cert",
            "--ca-cert",
            "cluster_ca.crt",
            "--ca-key",
            "cluster_ca.key",
            "--name",
            "cp,bad name",
        ],
    );
    assert!(err.contains("--name \"bad name\" is not a DNS name or an IP address"), "{err}");
    assert!(!d.join("cluster_cp.crt").exists());
}

// ---- /clustering/dp-certificates on a real control plane ----

use std::net::SocketAddr;

use gateway_tests::{DbLess, EchoServer, Gateway, free_port, http_form, http_json, http_request, poll};
use serde_json::{Value, json};

use crate::hybrid::{Cp, Dp, SYNC_DEADLINE, add_route, at, data_planes, wait_status, write_conf};

const DP_CERTS: &str = "/clustering/dp-certificates";

/// A directory with a cluster CA and a control plane certificate it signed for 127.0.0.1 and
/// localhost, all made by the CLI.
pub(crate) fn pki_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["hybrid", "gen_ca"]);
    ok(
        dir.path(),
        &[
            "hybrid",
            "gen_cp_cert",
            "--ca-cert",
            "cluster_ca.crt",
            "--ca-key",
            "cluster_ca.key",
            "--name",
            "localhost,127.0.0.1",
            "cp.crt",
            "cp.key",
        ],
    );
    dir
}

/// A pki control plane trusting `cluster_ca.crt` for data planes, its prefix `cp` in `dir`.
fn start_pki_cp(dir: &Path, cluster: u16) -> Cp {
    let admin = free_port();
    let lines = vec![
        "role = control_plane".into(),
        "cluster_mtls = pki".into(),
        "cluster_cert = cp.crt".into(),
        "cluster_cert_key = cp.key".into(),
        "cluster_ca_cert = cluster_ca.crt".into(),
        "prefix = cp".into(),
        format!("admin_listen = 127.0.0.1:{admin}"),
        format!("cluster_listen = 127.0.0.1:{cluster}"),
        format!("cluster_telemetry_listen = 127.0.0.1:{}", free_port()),
        "status_listen = off".into(),
    ];
    write_conf(dir, "cp.conf", &lines);
    let mut gateway = Gateway::start(dir, &["-c", "cp.conf"], &[]);
    gateway.wait_for_log("gateway started");
    Cp { gateway, admin: at(admin), cluster }
}

/// A pki data plane presenting `name.crt`/`name.key`, trusting `cluster_ca.crt` for the control plane.
fn start_pki_dp(dir: &Path, name: &str, cluster: u16) -> Dp {
    let (proxy, status) = (free_port(), free_port());
    let lines = vec![
        "role = data_plane".into(),
        "database = off".into(),
        "cluster_mtls = pki".into(),
        format!("cluster_cert = {name}.crt"),
        format!("cluster_cert_key = {name}.key"),
        "cluster_ca_cert = cluster_ca.crt".into(),
        format!("cluster_control_plane = 127.0.0.1:{cluster}"),
        format!("cluster_telemetry_endpoint = 127.0.0.1:{}", free_port()),
        format!("prefix = {name}"),
        format!("proxy_listen = 127.0.0.1:{proxy}"),
        format!("status_listen = 127.0.0.1:{status}"),
    ];
    let conf = format!("{name}.conf");
    write_conf(dir, &conf, &lines);
    let mut gateway = Gateway::start(dir, &["-c", &conf], &[]);
    gateway.wait_for_log("gateway started");
    Dp { gateway, proxy: at(proxy), status: at(status) }
}

fn get(admin: SocketAddr, path: &str) -> (u16, Value) {
    let out = http_request(admin, "GET", path, &[]).unwrap();
    let body = if out.body.is_empty() { Value::Null } else { out.json() };
    (out.status, body)
}

fn listed_ids(cp: &Cp) -> Vec<String> {
    let (status, body) = get(cp.admin, DP_CERTS);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["next"], Value::Null);
    body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn stop(gateway: &mut Gateway) {
    gateway.signal("TERM");
    assert!(gateway.wait_exit(crate::hybrid::SYNC_DEADLINE).success());
}

#[test]
fn a_generated_dp_pair_syncs_survives_a_cp_restart_and_is_refused_once_deleted() {
    let echo = EchoServer::start();
    let dir = pki_dir();
    let d = dir.path();
    let cluster = free_port();
    let mut cp = start_pki_cp(d, cluster);
    assert!(listed_ids(&cp).is_empty());

    let made = http_json(cp.admin, "POST", &format!("{DP_CERTS}/generate"), &json!({ "name": "dp-generated" }));
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.header("cache-control"), Some("no-store"), "an answer carrying a private key is never cached");
    let made = made.json();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(made["key"].as_str().unwrap().contains("BEGIN PRIVATE KEY"));
    assert_eq!(made["subject"], "CN=dp-generated");
    assert_eq!(made["is_ca"], false);
    assert_eq!(made["not_after"].as_i64().unwrap() - made["not_before"].as_i64().unwrap(), 3650 * 86_400 + 60);
    std::fs::write(d.join("gen.crt"), made["cert"].as_str().unwrap()).unwrap();
    std::fs::write(d.join("gen.key"), made["key"].as_str().unwrap()).unwrap();
    let (status, one) = get(cp.admin, &format!("{DP_CERTS}/{id}"));
    assert_eq!(status, 200);
    assert_eq!(one["cert"], made["cert"]);
    assert!(one.get("key").is_none(), "the key is handed out once, never stored or shown again");
    let stored = std::fs::read_to_string(d.join("cp/dp_certificates.json")).unwrap();
    assert!(stored.contains(&id) && !stored.contains("PRIVATE KEY"), "{stored}");
    assert!(!cp.gateway.log().contains("PRIVATE KEY"), "the key is never logged");

    // The CA's own leaf (gen_dp_cert) and the generated, self-signed pair both connect and sync.
    ok(
        d,
        &[
            "hybrid",
            "gen_dp_cert",
            "--ca-cert",
            "cluster_ca.crt",
            "--ca-key",
            "cluster_ca.key",
            "signed.crt",
            "signed.key",
        ],
    );
    let signed = start_pki_dp(d, "signed", cluster);
    let mut generated = start_pki_dp(d, "gen", cluster);
    poll("both data planes to connect", SYNC_DEADLINE, || (data_planes(&cp).len() == 2).then_some(()));
    add_route(&cp, &echo, "s", "r", "/one");
    wait_status(&signed, "/one", 200);
    wait_status(&generated, "/one", 200);

    // A restart keeps the entry, and the trust: the data planes redial and are let in.
    stop(&mut cp.gateway);
    let cp = start_pki_cp(d, cluster);
    assert_eq!(listed_ids(&cp), vec![id.clone()]);
    poll("both data planes to reconnect to the restarted control plane", SYNC_DEADLINE, || {
        (data_planes(&cp).len() == 2).then_some(())
    });

    // Deleted: a new connection with that certificate is refused; the CA-signed one still works.
    let deleted = http_request(cp.admin, "DELETE", &format!("{DP_CERTS}/{id}"), &[]).unwrap();
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(get(cp.admin, &format!("{DP_CERTS}/{id}")).0, 404);
    assert_eq!(http_request(cp.admin, "DELETE", &format!("{DP_CERTS}/{id}"), &[]).unwrap().status, 404);
    assert!(listed_ids(&cp).is_empty());
    stop(&mut generated.gateway);
    let _generated = start_pki_dp(d, "gen", cluster);
    poll("the control plane to refuse the deleted certificate", SYNC_DEADLINE, || {
        let log = cp.gateway.log();
        log.lines()
            .any(|l| {
                l.contains("refusing a data plane certificate")
                    && l.contains("CN=dp-generated")
                    && l.contains("is not trusted")
            })
            .then_some(())
    });
    add_route(&cp, &echo, "s2", "r2", "/two");
    wait_status(&signed, "/two", 200);
    assert_eq!(get(_generated.proxy, "/two").0, 404, "the refused data plane gets no new configuration");
}

#[test]
fn posted_certificates_are_checked_and_garbage_is_a_400_naming_cert() {
    let dir = pki_dir();
    let d = dir.path();
    let cp = start_pki_cp(d, free_port());

    let garbage = http_json(cp.admin, "POST", DP_CERTS, &json!({ "cert": "not a certificate" }));
    assert_eq!(garbage.status, 400, "{garbage:?}");
    let body = garbage.json();
    assert_eq!(body["name"], "schema violation");
    assert!(body["fields"]["cert"].as_str().unwrap().contains("not a PEM certificate"), "{body}");
    let form = http_form(
        cp.admin,
        "POST",
        DP_CERTS,
        "cert=-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----",
    );
    assert_eq!(form.status, 400, "{form:?}");
    assert!(form.json()["fields"]["cert"].is_string());
    let missing = http_json(cp.admin, "POST", DP_CERTS, &json!({}));
    assert_eq!(missing.json()["fields"]["cert"], "required field missing");
    let unknown = http_json(cp.admin, "POST", DP_CERTS, &json!({ "cert": "x", "tags": ["a"] }));
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["fields"]["tags"], "unknown field");
    let with_key = format!(
        "{}{}",
        std::fs::read_to_string(d.join("cp.crt")).unwrap(),
        std::fs::read_to_string(d.join("cp.key")).unwrap()
    );
    let sent_key = http_json(cp.admin, "POST", DP_CERTS, &json!({ "cert": with_key }));
    assert!(sent_key.json()["fields"]["cert"].as_str().unwrap().contains("holds a private key"), "{sent_key:?}");
    // A server certificate could never authenticate a data plane.
    let server_only =
        http_json(cp.admin, "POST", DP_CERTS, &json!({ "cert": std::fs::read_to_string(d.join("cp.crt")).unwrap() }));
    assert!(server_only.json()["fields"]["cert"].as_str().unwrap().contains("lacks the extended key usage clientAuth"));
    // An expired client certificate.
    let mut params = rcgen::CertificateParams::new(vec!["old".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let old = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    let expired = http_json(cp.admin, "POST", DP_CERTS, &json!({ "cert": old }));
    assert!(expired.json()["fields"]["cert"].as_str().unwrap().contains("expired"), "{expired:?}");
    assert!(listed_ids(&cp).is_empty(), "nothing refused was stored");

    // A CA is accepted, once; as a form too.
    ok(d, &["hybrid", "gen_ca", "other_ca.crt", "other_ca.key"]);
    let pem = std::fs::read_to_string(d.join("other_ca.crt")).unwrap();
    let encoded: String = pem
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let encoded = format!("cert={encoded}");
    let added = http_form(cp.admin, "POST", DP_CERTS, &encoded);
    assert_eq!(added.status, 201, "{added:?}");
    let added = added.json();
    assert_eq!(added["is_ca"], true);
    assert_eq!(added["subject"], "CN=gateway cluster CA");
    assert!(added["serial"].as_str().is_some_and(|s| !s.is_empty()));
    let again = http_json(cp.admin, "POST", DP_CERTS, &json!({ "cert": pem }));
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(listed_ids(&cp), vec![added["id"].as_str().unwrap().to_string()]);
    assert_eq!(
        http_request(cp.admin, "PATCH", &format!("{DP_CERTS}/{}", added["id"].as_str().unwrap()), &[]).unwrap().status,
        405
    );
    assert_eq!(get(cp.admin, &format!("{DP_CERTS}/generate")).0, 405);
    assert_eq!(get(cp.admin, &format!("{DP_CERTS}/not-a-uuid")).0, 404);
}

#[test]
fn shared_mode_refuses_dp_certificates_and_other_roles_do_not_have_them() {
    let dir = crate::hybrid::cluster_dir();
    let cp = crate::hybrid::start_cp(dir.path(), free_port());
    let (status, body) = get(cp.admin, DP_CERTS);
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("needs cluster_mtls = pki"), "{body}");
    let generate = http_json(cp.admin, "POST", &format!("{DP_CERTS}/generate"), &json!({}));
    assert_eq!(generate.status, 400, "{generate:?}");
    assert!(!dir.path().join("cp/dp_certificates.json").exists());

    let admin = free_port();
    let node = DbLess::start("_format_version: \"3.0\"\n", &[format!("admin_listen = 127.0.0.1:{admin}")]);
    assert_eq!(get(at(admin), DP_CERTS).0, 404);
    drop(node);
}
