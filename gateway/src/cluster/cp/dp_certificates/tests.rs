use std::os::unix::fs::PermissionsExt;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;

use super::*;
use crate::certs::ca::{CA_DEFAULT_NAME, ca_pair};

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A control plane's trust with an unrelated CA as cluster_ca_cert.
fn trust() -> Arc<DpTrust> {
    let ca = ca_pair(CA_DEFAULT_NAME, 10).unwrap();
    Arc::new(DpTrust::new(vec![der(&ca.cert_pem)]).unwrap())
}

fn self_signed(usages: Vec<ExtendedKeyUsagePurpose>, days: i64) -> String {
    let mut params = CertificateParams::new(vec!["dp".to_string()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = usages;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now + time::Duration::days(days);
    params.self_signed(&KeyPair::generate().unwrap()).unwrap().pem()
}

fn refusal(pem: &str) -> String {
    check_certificate(pem).unwrap_err().to_string()
}

#[test]
fn garbage_and_misfits_are_refused_naming_the_field() {
    assert_eq!(refusal("hello"), "cert: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)");
    assert_eq!(refusal("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"), "cert: not valid PEM");
    assert_eq!(
        refusal("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "cert: not a valid X.509 certificate"
    );
    let good = self_signed(vec![ExtendedKeyUsagePurpose::ClientAuth], 10);
    assert_eq!(refusal(&format!("{good}{good}")), "cert: holds 2 certificates: add them one at a time");
    let key = KeyPair::generate().unwrap().serialize_pem();
    assert_eq!(refusal(&format!("{good}{key}")), "cert: holds a private key: send only the certificate");
    let expired = self_signed(vec![ExtendedKeyUsagePurpose::ClientAuth], -1);
    assert!(refusal(&expired).starts_with("cert: the certificate expired at "), "{}", refusal(&expired));
    let server = self_signed(vec![ExtendedKeyUsagePurpose::ServerAuth], 10);
    assert!(refusal(&server).contains("lacks the extended key usage clientAuth"));
    check_certificate(&good).unwrap();
    // A CA needs no EKU of its own.
    check_certificate(&ca_pair("a CA", 5).unwrap().cert_pem).unwrap();
}

#[tokio::test]
async fn added_certificates_are_trusted_at_once_kept_across_a_restart_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let trust = trust();
    let store = DpCertificates::open(dir.path(), trust.clone()).unwrap();
    let pem = self_signed(vec![ExtendedKeyUsagePurpose::ClientAuth], 10);
    let leaf = der(&pem);
    trust.verify(std::slice::from_ref(&leaf)).unwrap_err();

    let entry = store.add(&pem).await.unwrap();
    trust.verify(std::slice::from_ref(&leaf)).unwrap();
    let file = dir.path().join(FILE);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
    assert!(matches!(store.add(&pem).await, Err(ChangeError::Duplicate { id, .. }) if id == entry.id()));
    let shown = entry.render();
    assert_eq!(shown["subject"], "CN=rcgen self signed cert");
    assert_eq!(shown["is_ca"], false);
    assert_eq!(shown["expired"], false);
    assert_eq!(shown["cert_digest"].as_str().unwrap().len(), 64);

    // A new process: the file brings the trust back.
    let again = trust_of_new_process(dir.path());
    again.1.verify(std::slice::from_ref(&leaf)).unwrap();
    assert_eq!(again.0.list().await.iter().map(Entry::id).collect::<Vec<_>>(), vec![entry.id()]);

    assert!(!store.remove(Uuid::new_v4()).await.unwrap());
    assert!(store.remove(entry.id()).await.unwrap());
    trust.verify(std::slice::from_ref(&leaf)).unwrap_err();
    assert!(trust_of_new_process(dir.path()).0.list().await.is_empty());
}

fn trust_of_new_process(prefix: &Path) -> (DpCertificates, Arc<DpTrust>) {
    let trust = trust();
    (DpCertificates::open(prefix, trust.clone()).unwrap(), trust)
}

#[tokio::test]
async fn a_generated_pair_is_trusted_and_its_key_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let trust = trust();
    let store = DpCertificates::open(dir.path(), trust.clone()).unwrap();
    let generated = store.generate("dp-1", GENERATE_DEFAULT_DAYS).await.unwrap();
    let cert = crate::tls::PemSource::Inline(generated.entry.stored.cert.clone());
    crate::certs::check_pair(&cert, &crate::tls::PemSource::Inline(generated.key_pem.clone())).unwrap();
    let verified = trust.verify(&[der(&generated.entry.stored.cert)]).unwrap();
    assert_eq!(verified.leaf.subject, "CN=dp-1");
    let days = (verified.leaf.not_after - verified.leaf.not_before) / 86_400;
    assert_eq!(days, i64::from(GENERATE_DEFAULT_DAYS));
    let file = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
    assert!(!file.contains("PRIVATE KEY"), "{file}");
    assert!(file.contains(&generated.entry.id().to_string()));
}

#[test]
fn a_damaged_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE), "{\"dp_certificates\": [{\"id\": 1}]}").unwrap();
    let err = DpCertificates::open(dir.path(), trust()).err().unwrap().to_string();
    assert!(err.contains("dp_certificates.json: not a valid list of trusted data plane certificates"), "{err}");
    let id = Uuid::new_v4();
    std::fs::write(
        dir.path().join(FILE),
        json!({ "dp_certificates": [{ "id": id, "cert": "junk", "created_at": 1 }] }).to_string(),
    )
    .unwrap();
    let err = DpCertificates::open(dir.path(), trust()).err().unwrap().to_string();
    assert!(err.contains(&format!("entry 1 ({id}): not a PEM certificate")), "{err}");
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    fn pem_block(body: &[u8]) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(body);
        format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n")
    }

    proptest! {
        /// Whatever a client sends as `cert` is refused or accepted, never a panic.
        #[test]
        fn any_text_is_answered_without_panicking(text in ".{0,400}") {
            let _ = check_certificate(&text);
        }

        /// Arbitrary DER inside a well-formed PEM block, and a real certificate with bytes flipped.
        #[test]
        fn any_der_is_answered_without_panicking(
            junk in proptest::collection::vec(any::<u8>(), 0..600),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let _ = check_certificate(&pem_block(&junk));
            let good = ca_pair("p", 1).unwrap().cert_pem;
            let mut der = der(&good).to_vec();
            prop_assert!(check_certificate(&pem_block(&der)).is_ok(), "the unflipped certificate passes");
            for (at, byte) in flips {
                let i = at.index(der.len());
                der[i] ^= byte;
            }
            let _ = check_certificate(&pem_block(&der));
        }
    }
}
