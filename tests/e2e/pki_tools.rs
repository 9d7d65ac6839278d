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
