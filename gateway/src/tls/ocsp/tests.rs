//! Requests are answered by a real `openssl ocsp` (offline: `-reqin`/`-respout`), so what is
//! checked here is what real responders send. Certificates are made with rcgen.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicUsize;

use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_cert::der::asn1::Ia5String;
use x509_cert::ext::pkix::AccessDescription;

use super::*;

fn dn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn aia(url: &str) -> CustomExtension {
    let value = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: OID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url).unwrap()),
    }]);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], value.to_der().unwrap())
}

/// A CA on disk, its leaves and responders, and an `openssl ocsp` to answer for it.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    name: &'static str,
}

/// A certificate and where its PEM files are.
struct Issued {
    der: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &'static str) -> Pki {
        Pki::with_key(name, KeyPair::generate().unwrap())
    }

    /// A CA with an RSA key, made by openssl (ring signs with RSA but does not make RSA keys).
    fn rsa(name: &'static str) -> Pki {
        let out = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .unwrap();
        assert!(out.status.success());
        Pki::with_key(name, KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap())
    }

    fn with_key(name: &'static str, key: KeyPair) -> Pki {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        let ca = CertifiedIssuer::self_signed(params, key).unwrap();
        std::fs::write(dir.path().join(format!("{name}.pem")), ca.pem()).unwrap();
        Pki { dir, ca, name }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn as_issued(&self) -> Issued {
        Issued {
            der: self.ca.der().clone(),
            cert: self.path(&format!("{}.pem", self.name)),
            key: self.path(&format!("{}.key", self.name)),
        }
    }

    fn issue(&self, file: &str, serial: u64, usages: Vec<ExtendedKeyUsagePurpose>, url: Option<&str>) -> Issued {
        let mut params = CertificateParams::new(vec![file.to_string()]).unwrap();
        params.distinguished_name = dn(file);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = usages;
        params.custom_extensions = url.map(aia).into_iter().collect();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) = (self.path(&format!("{file}.pem")), self.path(&format!("{file}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Issued { der: cert.der().clone(), cert: cert_path, key: key_path }
    }

    fn leaf(&self, serial: u64) -> Issued {
        self.issue(&format!("leaf{serial:x}"), serial, vec![ExtendedKeyUsagePurpose::ClientAuth], Some(URL))
    }

    fn delegate(&self, usages: Vec<ExtendedKeyUsagePurpose>) -> Issued {
        self.issue("responder", 0x7777, usages, None)
    }

    fn issuer(&self) -> Certificate {
        Certificate::from_der(self.ca.der()).unwrap()
    }

    /// `openssl ocsp`'s answer to `request`, signed by `signer`, from an index where `revoked`
    /// serials are revoked (keyCompromise) and `good` ones valid.
    fn answer(&self, request: &[u8], signer: &Issued, good: &[u64], revoked: &[u64], extra: &[&str]) -> Vec<u8> {
        let mut index = String::new();
        for serial in good {
            index.push_str(&format!("V\t301231000000Z\t\t{serial:X}\tunknown\t/CN=leaf\n"));
        }
        for serial in revoked {
            index.push_str(&format!("R\t301231000000Z\t250102030405Z,keyCompromise\t{serial:X}\tunknown\t/CN=leaf\n"));
        }
        std::fs::write(self.path("index.txt"), index).unwrap();
        std::fs::write(self.path("req.der"), request).unwrap();
        let out = self.path("resp.der");
        let _ = std::fs::remove_file(&out);
        let status = Command::new("openssl")
            .arg("ocsp")
            .arg("-index")
            .arg(self.path("index.txt"))
            .arg("-CA")
            .arg(self.path(&format!("{}.pem", self.name)))
            .arg("-rsigner")
            .arg(&signer.cert)
            .arg("-rkey")
            .arg(&signer.key)
            .arg("-reqin")
            .arg(self.path("req.der"))
            .arg("-respout")
            .arg(&out)
            .args(extra)
            .output()
            .expect("openssl is installed");
        assert!(status.status.success(), "openssl ocsp: {}", String::from_utf8_lossy(&status.stderr));
        std::fs::read(out).unwrap()
    }
}

const URL: &str = "http://127.0.0.1:1/ocsp";

fn id_of(leaf: &Issued, pki: &Pki) -> CertId {
    cert_id(&Certificate::from_der(&leaf.der).unwrap(), &pki.issuer()).unwrap()
}

fn now() -> u64 {
    unix_now()
}

#[test]
fn the_request_asks_by_sha1_without_a_nonce_and_openssl_reads_it() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let der = request_der(&id_of(&leaf, &pki)).unwrap();
    let request = OcspRequest::from_der(&der).unwrap();
    assert!(request.tbs_request.request_extensions.is_none(), "no nonce");
    assert!(request.optional_signature.is_none());
    let asked = &request.tbs_request.request_list[0].req_cert;
    assert_eq!(asked.hash_algorithm.oid, OID_SHA1);
    assert_eq!(asked.serial_number.as_bytes(), [0x10, 0x01]);

    std::fs::write(pki.path("req.der"), &der).unwrap();
    let text = Command::new("openssl").args(["ocsp", "-req_text", "-reqin"]).arg(pki.path("req.der")).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Hash Algorithm: sha1") && text.contains("Serial Number: 1001"), "{text}");
    assert!(!text.contains("Nonce"), "{text}");
}

#[test]
fn a_good_answer_from_a_delegated_responder_is_believed_until_its_next_update() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let responder = pki.delegate(vec![ExtendedKeyUsagePurpose::OcspSigning]);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &responder, &[0x1001], &[], &["-ndays", "1"]);
    let answer = evaluate(&body, &id, &pki.issuer(), now()).unwrap();
    assert_eq!(answer.status, AnswerStatus::Known(Status::Good));
    let next = answer.next_update.expect("-ndays sets nextUpdate");
    assert!(next.abs_diff(now() + 86_400) < 120, "{next}");

    // A day later the same answer is stale.
    let fault = evaluate(&body, &id, &pki.issuer(), next + 1).unwrap_err();
    assert!(matches!(fault, ResponseFault::Stale(_)), "{fault}");
}

#[test]
fn a_revoked_answer_signed_by_the_issuer_carries_its_time_and_reason() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1002);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &pki.as_issued(), &[], &[0x1002], &[]);
    let answer = evaluate(&body, &id, &pki.issuer(), now()).unwrap();
    let AnswerStatus::Known(Status::Revoked(revoked)) = answer.status else { panic!("{answer:?}") };
    assert_eq!(revoked.since, "2025-01-02T03:04:05Z");
    assert_eq!(revoked.reason, Some("keyCompromise"));
    assert_eq!(answer.next_update, None, "no -ndays: no nextUpdate");
    assert_eq!(
        Refusal::Revoked(revoked).to_string(),
        "the certificate is revoked (since 2025-01-02T03:04:05Z, reason keyCompromise)"
    );
}

#[test]
fn an_rsa_issuer_and_an_ecdsa_delegate_are_both_verified() {
    let pki = Pki::rsa("ca");
    let leaf = pki.leaf(0x1001);
    let id = id_of(&leaf, &pki);
    for signer in [pki.as_issued(), pki.delegate(vec![ExtendedKeyUsagePurpose::OcspSigning])] {
        let body = pki.answer(&request_der(&id).unwrap(), &signer, &[0x1001], &[], &[]);
        assert_eq!(evaluate(&body, &id, &pki.issuer(), now()).unwrap().status, AnswerStatus::Known(Status::Good));
    }
}

#[test]
fn a_serial_the_responder_does_not_know_is_unknown() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1003);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &pki.as_issued(), &[0x1001], &[], &[]);
    assert_eq!(evaluate(&body, &id, &pki.issuer(), now()).unwrap().status, AnswerStatus::Unknown);
}

#[test]
fn an_answer_about_another_certificate_is_no_answer() {
    let pki = Pki::new("ca");
    let asked = pki.leaf(0x1001);
    let other = pki.leaf(0x1004);
    let body = pki.answer(&request_der(&id_of(&asked, &pki)).unwrap(), &pki.as_issued(), &[0x1001], &[], &[]);
    let fault = evaluate(&body, &id_of(&other, &pki), &pki.issuer(), now()).unwrap_err();
    assert_eq!(fault, ResponseFault::NoAnswer);
}

#[test]
fn a_responder_without_the_ocsp_signing_usage_is_not_believed() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let responder = pki.delegate(vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &responder, &[0x1001], &[], &[]);
    let fault = evaluate(&body, &id, &pki.issuer(), now()).unwrap_err();
    assert_eq!(
        fault,
        ResponseFault::Unauthorised {
            signer: "CN=responder".into(),
            why: "it lacks the extended key usage OCSPSigning"
        }
    );
}

#[test]
fn a_responder_another_ca_issued_is_not_believed() {
    let pki = Pki::new("ca");
    let stranger = Pki::new("other");
    let leaf = pki.leaf(0x1001);
    let responder = stranger.delegate(vec![ExtendedKeyUsagePurpose::OcspSigning]);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &responder, &[0x1001], &[], &[]);
    let fault = evaluate(&body, &id, &pki.issuer(), now()).unwrap_err();
    assert_eq!(
        fault,
        ResponseFault::Unauthorised {
            signer: "CN=responder".into(),
            why: "it was not issued by the certificate's issuer"
        }
    );

    // Another CA signing for itself, without sending its certificate: nothing verifies.
    let body = pki.answer(&request_der(&id).unwrap(), &stranger.as_issued(), &[0x1001], &[], &["-resp_no_certs"]);
    assert_eq!(evaluate(&body, &id, &pki.issuer(), now()).unwrap_err(), ResponseFault::BadSignature);
}

#[test]
fn a_responder_certificate_that_claims_the_issuers_name_but_is_self_signed_is_not_believed() {
    // A forger's self-signed "CN=ca" responder with OCSPSigning: the name matches, the signature does not.
    let pki = Pki::new("ca");
    let forger = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let responder = forger.delegate(vec![ExtendedKeyUsagePurpose::OcspSigning]);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &responder, &[0x1001], &[], &[]);
    let fault = evaluate(&body, &id, &pki.issuer(), now()).unwrap_err();
    assert_eq!(
        fault,
        ResponseFault::Unauthorised {
            signer: "CN=responder".into(),
            why: "its signature does not verify with the issuer's key"
        }
    );
}

#[test]
fn a_tampered_answer_fails_its_signature() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let responder = pki.delegate(vec![ExtendedKeyUsagePurpose::OcspSigning]);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &responder, &[], &[0x1001], &[]);

    // Turn "revoked" into "good" and re-encode with the crate: the signature no longer covers it.
    let mut response = OcspResponse::from_der(&body).unwrap();
    let bytes = response.response_bytes.as_mut().unwrap();
    let mut basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    basic.tbs_response_data.responses[0].cert_status = CertStatus::good();
    bytes.response = OctetString::new(basic.to_der().unwrap()).unwrap();
    let forged = response.to_der().unwrap();
    assert_eq!(evaluate(&forged, &id, &pki.issuer(), now()).unwrap_err(), ResponseFault::BadSignature);
}

#[test]
fn an_answer_from_the_future_is_refused() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &pki.as_issued(), &[0x1001], &[], &[]);
    let fault = evaluate(&body, &id, &pki.issuer(), now() - 3600).unwrap_err();
    assert!(matches!(fault, ResponseFault::NotYetValid(_)), "{fault}");
}

#[test]
fn unsuccessful_and_malformed_responses_are_faults() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1001);
    let id = id_of(&leaf, &pki);
    let issuer = pki.issuer();
    let try_later = OcspResponse::try_later().to_der().unwrap();
    assert_eq!(evaluate(&try_later, &id, &issuer, now()).unwrap_err(), ResponseFault::NotSuccessful("tryLater"));
    assert!(matches!(evaluate(b"<html>", &id, &issuer, now()), Err(ResponseFault::Malformed(_))));
    assert!(matches!(evaluate(&[], &id, &issuer, now()), Err(ResponseFault::Malformed(_))));
}

#[test]
fn the_responder_comes_from_the_authority_information_access() {
    let pki = Pki::new("ca");
    let with = Certificate::from_der(&pki.leaf(0x1001).der).unwrap();
    assert_eq!(responder_url(&with).unwrap(), URL);
    let without = pki.issue("bare", 0x1005, vec![ExtendedKeyUsagePurpose::ClientAuth], None);
    let without = Certificate::from_der(&without.der).unwrap();
    assert_eq!(responder_url(&without).unwrap_err(), OcspError::NoResponder);
}

#[test]
fn the_policy_refuses_revoked_always_and_unknown_unless_optional() {
    let revoked = Status::Revoked(Revoked { since: "2025-01-02T03:04:05Z".into(), reason: None });
    let down = OcspError::Timeout { url: URL.into() };
    assert_eq!(decide(OcspMode::On, Ok(Status::Good)), Decision::Allow);
    assert_eq!(decide(OcspMode::Optional, Ok(Status::Good)), Decision::Allow);
    for mode in [OcspMode::On, OcspMode::Optional] {
        assert!(matches!(decide(mode, Ok(revoked.clone())), Decision::Refuse(Refusal::Revoked(_))), "{mode:?}");
    }
    assert_eq!(decide(OcspMode::On, Err(down.clone())), Decision::Refuse(Refusal::Unchecked(down.clone())));
    assert_eq!(decide(OcspMode::Optional, Err(down.clone())), Decision::AllowUnchecked(down.clone()));
    assert_eq!(decide(OcspMode::Off, Ok(revoked)), Decision::Allow);
    assert_eq!(decide(OcspMode::Off, Err(down)), Decision::Allow);
}

/// A one-answer HTTP server counting its requests; `respond` makes each answer's bytes.
async fn responder(respond: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let seen = seen.clone();
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let answer = respond();
                if !answer.is_empty() {
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                }
                // Hold the socket so a silent answer stays silent.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
        }
    });
    (url, count)
}

fn http_ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/ocsp-response\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A leaf whose AIA names `url`, and a response (good, one day) for it.
fn served(pki: &Pki, url: &str, revoked: bool) -> (Issued, Vec<u8>) {
    let leaf = pki.issue("served", 0x2001, vec![ExtendedKeyUsagePurpose::ClientAuth], Some(url));
    let id = id_of(&leaf, pki);
    let (good, bad): (&[u64], &[u64]) = if revoked { (&[], &[0x2001]) } else { (&[0x2001], &[]) };
    let body = pki.answer(&request_der(&id).unwrap(), &pki.as_issued(), good, bad, &["-ndays", "1"]);
    (leaf, body)
}

#[tokio::test]
async fn a_storm_of_checks_costs_the_responder_one_request() {
    let pki = Pki::new("ca");
    let slot = Arc::new(Mutex::new(Vec::new()));
    let answer = slot.clone();
    let (url, count) = responder(move || http_ok(&lock(&answer))).await;
    let (leaf, body) = served(&pki, &url, false);
    *lock(&slot) = body;
    let ocsp = Arc::new(Ocsp::new(OcspMode::On, None));
    let issuer = pki.ca.der().clone();
    let checks: Vec<_> = (0..20)
        .map(|_| {
            let (ocsp, leaf, issuer) = (ocsp.clone(), leaf.der.clone(), issuer.clone());
            tokio::spawn(async move { ocsp.check(&leaf, Some(&issuer)).await })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap(), Decision::Allow);
    }
    assert_eq!(ocsp.check(&leaf.der, Some(&issuer)).await, Decision::Allow);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(ocsp.requests_sent(), 1);
}

#[tokio::test]
async fn a_revoked_answer_is_cached_and_refused_in_both_modes() {
    let pki = Pki::new("ca");
    let slot = Arc::new(Mutex::new(Vec::new()));
    let answer = slot.clone();
    let (url, count) = responder(move || http_ok(&lock(&answer))).await;
    let (leaf, body) = served(&pki, &url, true);
    *lock(&slot) = body;
    let issuer = pki.ca.der().clone();
    let optional = Ocsp::new(OcspMode::Optional, None);
    for _ in 0..3 {
        assert!(matches!(optional.check(&leaf.der, Some(&issuer)).await, Decision::Refuse(Refusal::Revoked(_))));
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn responder_failures_are_typed() {
    let pki = Pki::new("ca");
    let issuer = pki.ca.der().clone();
    let on = Ocsp::new(OcspMode::On, None);
    // Failures are remembered for a few seconds: each case gets its own certificate.
    let serial = AtomicU64::new(0x3100);
    let check = |url: String| {
        let serial = serial.fetch_add(1, Ordering::SeqCst);
        let leaf = pki.issue("failing", serial, vec![ExtendedKeyUsagePurpose::ClientAuth], Some(&url));
        let on = &on;
        let issuer = issuer.clone();
        async move { on.status(&leaf.der, Some(&issuer)).await.unwrap_err() }
    };

    let (url, _) = responder(|| b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
    assert_eq!(check(url.clone()).await, OcspError::HttpStatus { url, status: 500 });

    let (url, _) = responder(|| http_ok(&vec![0u8; MAX_RESPONSE + 1])).await;
    assert_eq!(check(url.clone()).await, OcspError::TooLarge { url });

    let (url, _) = responder(|| {
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            chunked.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
            chunked.extend_from_slice(&[0u8; 8192]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        chunked
    })
    .await;
    assert_eq!(check(url.clone()).await, OcspError::TooLarge { url });

    let (url, _) = responder(|| http_ok(b"not der")).await;
    assert!(matches!(check(url).await, OcspError::BadResponse { fault: ResponseFault::Malformed(_), .. }));

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    assert!(matches!(check(url).await, OcspError::Unreachable { .. }));

    let url = "https://127.0.0.1:1/".to_string();
    assert!(matches!(check(url).await, OcspError::UnsupportedUrl { .. }));
    let url = "ldap://127.0.0.1/cn=ocsp".to_string();
    assert!(matches!(check(url).await, OcspError::UnsupportedUrl { .. }));

    let leaf = pki.leaf(0x3002);
    assert_eq!(on.status(&leaf.der, None).await.unwrap_err(), OcspError::NoIssuer);
    let bare = pki.issue("bare", 0x3003, vec![ExtendedKeyUsagePurpose::ClientAuth], None);
    assert_eq!(on.status(&bare.der, Some(&issuer)).await.unwrap_err(), OcspError::NoResponder);
    assert!(matches!(on.check(&bare.der, Some(&issuer)).await, Decision::Refuse(Refusal::Unchecked(_))));
    let optional = Ocsp::new(OcspMode::Optional, None);
    assert!(matches!(optional.check(&bare.der, Some(&issuer)).await, Decision::AllowUnchecked(OcspError::NoResponder)));
    let off = Ocsp::new(OcspMode::Off, None);
    assert_eq!(off.check(&bare.der, None).await, Decision::Allow);
}

#[tokio::test(start_paused = true)]
async fn a_silent_responder_times_out_after_five_seconds() {
    let pki = Pki::new("ca");
    let (url, _) = responder(Vec::new).await;
    let leaf = pki.issue("silent", 0x4001, vec![ExtendedKeyUsagePurpose::ClientAuth], Some(&url));
    let on = Ocsp::new(OcspMode::On, None);
    let started = tokio::time::Instant::now();
    let error = on.status(&leaf.der, Some(pki.ca.der())).await.unwrap_err();
    assert_eq!(error, OcspError::Timeout { url });
    assert_eq!(started.elapsed().as_secs(), 5);
}

#[test]
fn a_responder_that_cannot_be_asked_is_named_in_the_error() {
    let error = OcspError::Timeout { url: URL.into() };
    assert_eq!(error.to_string(), "the OCSP responder http://127.0.0.1:1/ocsp did not answer within 5s");
    assert_eq!(
        Refusal::Unchecked(error).to_string(),
        "its revocation status is unknown: the OCSP responder http://127.0.0.1:1/ocsp did not answer within 5s"
    );
}

/// An issuer, a CertID and a good answer for it; the files are gone once it is made.
fn fixture() -> &'static (Certificate, CertId, Vec<u8>) {
    static FIXTURE: std::sync::OnceLock<(Certificate, CertId, Vec<u8>)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = Pki::new("ca");
        let leaf = pki.leaf(0x1001);
        let responder = pki.delegate(vec![ExtendedKeyUsagePurpose::OcspSigning]);
        let id = id_of(&leaf, &pki);
        let body = pki.answer(&request_der(&id).unwrap(), &responder, &[0x1001], &[], &["-ndays", "1"]);
        (pki.issuer(), id, body)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a responder sends, reading it returns; a changed byte never yields a different
    /// verified answer.
    #[test]
    fn any_response_is_read_without_panic(garbage in proptest::collection::vec(any::<u8>(), 0..600),
                                          at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (issuer, id, body) = fixture();
        let _ = evaluate(&garbage, id, issuer, now());
        let mut changed = body.clone();
        let i = at.index(changed.len());
        changed[i] ^= flip;
        if let Ok(answer) = evaluate(&changed, id, issuer, now()) {
            // Only bytes outside what is signed (e.g. the included certificates' unsigned parts) may change.
            prop_assert_eq!(answer.status, AnswerStatus::Known(Status::Good));
        }
    }
}

/// An answer that promises no next update is believed only while fresh: without a nonce, an old
/// signed "good" could otherwise be replayed after a revocation.
#[test]
fn an_answer_without_next_update_goes_stale() {
    let pki = Pki::new("ca");
    let leaf = pki.leaf(0x1010);
    let id = id_of(&leaf, &pki);
    let body = pki.answer(&request_der(&id).unwrap(), &pki.as_issued(), &[0x1010], &[], &[]);
    let answer = evaluate(&body, &id, &pki.issuer(), now()).unwrap();
    assert!(answer.next_update.is_none());
    let fault = evaluate(&body, &id, &pki.issuer(), now() + 3600).unwrap_err();
    assert!(matches!(fault, ResponseFault::TooOld(_)), "{fault}");
}
