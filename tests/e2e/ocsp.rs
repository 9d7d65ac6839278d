//! `cluster_ocsp` against a real `openssl ocsp` responder: a pki control plane asks the responder
//! named in each data plane certificate's AIA, refuses revoked certificates always and, when `on`,
//! those whose status it cannot learn; `optional` lets the latter in with a warning; `off` asks
//! nothing. Certificates are made with `openssl req`/`openssl x509 -extfile`, as an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_tests::peers::{Peer, ocsp_requests, openssl_ocsp};
use gateway_tests::{free_port, poll, run, stdout};

use crate::hybrid::{Cp, Dp, SYNC_DEADLINE, data_planes, start_cp_with, start_dp};

/// The data plane certificate's serial, as `openssl x509 -noout -serial` prints it.
const SERIAL: &str = "0A01";
const SUBJECT_CN: &str = "dp-ocsp-e2e";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A key and a certificate `name.key`/`name.crt` with the extensions `ext`, signed by the CA (or
/// by itself when `name` is `ca`).
fn issue(dir: &Path, name: &str, subject: &str, serial: &str, ext: &str) {
    let (key, csr, crt, extfile) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ],
    );
    std::fs::write(dir.join(&extfile), ext).unwrap();
    let signer: &[&str] = if name == "ca" { &["-signkey", "ca.key"] } else { &["-CA", "ca.crt", "-CAkey", "ca.key"] };
    let mut args = vec!["x509", "-req", "-in", &csr, "-set_serial", serial, "-days", "30", "-extfile", &extfile];
    args.extend_from_slice(signer);
    args.extend_from_slice(&["-out", &crt]);
    openssl(dir, &args);
}

/// A cluster CA, a control plane certificate, a delegated OCSP responder and a data plane
/// certificate whose AIA names `http://127.0.0.1:<ocsp_port>/`; the CP's and DP's own
/// directories hold their `cluster.crt`/`cluster.key` and `ca.crt`.
struct Pki {
    root: tempfile::TempDir,
    ocsp_port: u16,
}

impl Pki {
    fn new() -> Pki {
        let root = tempfile::tempdir().unwrap();
        let ocsp_port = free_port();
        let pki = root.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        issue(
            &pki,
            "ca",
            "/CN=ocsp-e2e-ca",
            "0x01",
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n",
        );
        let leaf = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
        issue(
            &pki,
            "cp",
            "/CN=cp-ocsp-e2e",
            "0x0C01",
            &format!("{leaf}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"),
        );
        issue(&pki, "responder", "/CN=ocsp-e2e-responder", "0x0F01", &format!("{leaf}extendedKeyUsage=OCSPSigning\n"));
        issue(
            &pki,
            "dp",
            &format!("/O=Gateway Tests/CN={SUBJECT_CN}"),
            &format!("0x{SERIAL}"),
            &format!("{leaf}extendedKeyUsage=clientAuth\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:{ocsp_port}/\n"),
        );
        for (side, cert) in [("cp", "cp"), ("dp", "dp")] {
            let dir = root.path().join(side);
            std::fs::create_dir(&dir).unwrap();
            std::fs::copy(pki.join(format!("{cert}.crt")), dir.join("cluster.crt")).unwrap();
            std::fs::copy(pki.join(format!("{cert}.key")), dir.join("cluster.key")).unwrap();
            std::fs::copy(pki.join("ca.crt"), dir.join("ca.crt")).unwrap();
        }
        Pki { root, ocsp_port }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The responder, answering that the data plane's certificate is good or revoked.
    fn responder(&self, revoked: bool) -> Peer {
        let pki = self.dir("pki");
        let line = if revoked {
            format!(
                "R\t301231000000Z\t250102030405Z,keyCompromise\t{SERIAL}\tunknown\t/O=Gateway Tests/CN={SUBJECT_CN}\n"
            )
        } else {
            format!("V\t301231000000Z\t\t{SERIAL}\tunknown\t/O=Gateway Tests/CN={SUBJECT_CN}\n")
        };
        std::fs::write(pki.join("index.txt"), line).unwrap();
        openssl_ocsp(
            &pki,
            self.ocsp_port,
            &pki.join("index.txt"),
            &pki.join("ca.crt"),
            (&pki.join("responder.crt"), &pki.join("responder.key")),
            1,
        )
    }

    fn cp(&self, ocsp: &str) -> Cp {
        start_cp_with(
            &self.dir("cp"),
            free_port(),
            &["cluster_mtls = pki".into(), "cluster_ca_cert = ca.crt".into(), format!("cluster_ocsp = {ocsp}")],
        )
    }

    fn dp(&self, cp: &Cp) -> Dp {
        start_dp(&self.dir("dp"), "dp", cp.cluster, &dp_lines())
    }

    /// `gateway cluster check` from the data plane's configuration.
    fn check(&self) -> (bool, String) {
        let out = run(&self.dir("dp"), &["cluster", "check", "-c", "dp.conf"], &[]);
        (out.status.success(), stdout(&out))
    }
}

fn dp_lines() -> Vec<String> {
    vec!["cluster_mtls = pki".into(), "cluster_ca_cert = ca.crt".into(), "cluster_server_name = localhost".into()]
}

fn connects(cp: &Cp) {
    poll("the data plane to connect", SYNC_DEADLINE, || (data_planes(cp).len() == 1).then_some(()));
}

/// The control plane's refusal line names the data plane's address, the certificate's serial and
/// subject, and `reason`; the data plane's log names the refusal at its certificate hop.
fn refused(cp: &mut Cp, dp: &mut Dp, kind: &str, reason: &str) {
    cp.gateway.wait_for_log("refusing a data plane certificate");
    dp.gateway.wait_for_log("refused this data plane's certificate");
    let log = cp.gateway.log();
    let line = log.lines().find(|l| l.contains("refusing a data plane certificate")).unwrap();
    for needle in ["peer=127.0.0.1:", &format!("serial={SERIAL}"), SUBJECT_CN, reason] {
        assert!(line.contains(needle), "`{needle}` missing from the refusal:\n{line}");
    }
    let dp_log = dp.gateway.log();
    let dp_line = dp_log.lines().find(|l| l.contains("refused this data plane's certificate")).unwrap();
    assert!(
        dp_line.contains(&format!(
            "CP certificate failed: the control plane 127.0.0.1:{} refused this data plane's certificate ({kind})",
            cp.cluster
        )),
        "{dp_line}"
    );
    assert!(dp_line.contains(reason), "{dp_line}");
    assert!(data_planes(cp).is_empty());
}

#[test]
fn ocsp_on_lets_a_good_certificate_in_and_asks_the_responder_once() {
    let pki = Pki::new();
    let responder = pki.responder(false);
    let cp = pki.cp("on");
    let _dp = pki.dp(&cp);
    connects(&cp);
    // Many more links from the same certificate: the answer is cached until its nextUpdate.
    for _ in 0..8 {
        let (ok, out) = pki.check();
        assert!(ok, "{out}");
        assert!(out.contains("the control plane accepted a data plane link"), "{out}");
    }
    assert_eq!(ocsp_requests(&responder), 1, "{}", responder.log_text());
    assert!(!cp.gateway.log().contains("refusing a data plane certificate"), "{}", cp.gateway.log());
}

#[test]
fn ocsp_on_refuses_a_revoked_certificate() {
    let pki = Pki::new();
    let responder = pki.responder(true);
    let mut cp = pki.cp("on");
    let mut dp = pki.dp(&cp);
    refused(&mut cp, &mut dp, "certificate-revoked", "revoked (since 2025-01-02T03:04:05Z, reason keyCompromise)");
    let (ok, out) = pki.check();
    assert!(!ok);
    assert!(out.contains("FAIL  CP certificate") && out.contains("certificate-revoked"), "{out}");
    assert!(ocsp_requests(&responder) >= 1);
}

#[test]
fn ocsp_on_refuses_when_the_responder_is_down() {
    let pki = Pki::new();
    // Nothing listens where the certificate's AIA points.
    let mut cp = pki.cp("on");
    let mut dp = pki.dp(&cp);
    let url = format!("http://127.0.0.1:{}/", pki.ocsp_port);
    refused(&mut cp, &mut dp, "certificate-status-unknown", &format!("the OCSP responder {url} is unreachable"));
    let (ok, out) = pki.check();
    assert!(!ok);
    assert!(out.contains("FAIL  CP certificate") && out.contains("certificate-status-unknown"), "{out}");
}

#[test]
fn ocsp_off_asks_nothing_and_lets_a_revoked_certificate_in() {
    let pki = Pki::new();
    let responder = pki.responder(true);
    let cp = pki.cp("off");
    let _dp = pki.dp(&cp);
    connects(&cp);
    assert_eq!(ocsp_requests(&responder), 0);
}

#[test]
fn ocsp_optional_still_refuses_a_revoked_certificate() {
    let pki = Pki::new();
    let _responder = pki.responder(true);
    let mut cp = pki.cp("optional");
    let mut dp = pki.dp(&cp);
    refused(&mut cp, &mut dp, "certificate-revoked", "revoked (since 2025-01-02T03:04:05Z, reason keyCompromise)");
}

#[test]
fn ocsp_optional_lets_a_certificate_in_with_a_warning_when_the_responder_is_down() {
    let pki = Pki::new();
    let mut cp = pki.cp("optional");
    let _dp = pki.dp(&cp);
    connects(&cp);
    cp.gateway.wait_for_log("accepting a data plane certificate whose revocation status is unknown");
    let log = cp.gateway.log();
    let line = log.lines().find(|l| l.contains("revocation status is unknown")).unwrap();
    for needle in [
        "peer=127.0.0.1:",
        &format!("serial={SERIAL}"),
        SUBJECT_CN,
        &format!("the OCSP responder http://127.0.0.1:{}/ is unreachable", pki.ocsp_port),
    ] {
        assert!(line.contains(needle), "`{needle}` missing from the warning:\n{line}");
    }
    assert!(!log.contains("refusing a data plane certificate"), "{log}");
}
