use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose as Eku, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::*;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn params(name: &str, days: (i64, i64)) -> CertificateParams {
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(days.0);
    params.not_after = now + time::Duration::days(days.1);
    params
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = params(name, (-1, 30));
    p.subject_alt_names.clear();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn root(name: &str) -> Ca {
    CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap()).unwrap()
}

fn sub(name: &str, parent: &Ca) -> Ca {
    CertifiedIssuer::signed_by(ca_params(name), KeyPair::generate().unwrap(), parent).unwrap()
}

fn leaf_with(name: &str, by: &Ca, usages: Vec<Eku>, days: (i64, i64)) -> CertificateDer<'static> {
    let mut p = params(name, days);
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = usages;
    p.signed_by(&KeyPair::generate().unwrap(), by).unwrap().der().clone()
}

fn client(by: &Ca) -> CertificateDer<'static> {
    leaf_with("dp", by, vec![Eku::ClientAuth], (-1, 30))
}

fn der(ca: &Ca) -> CertificateDer<'static> {
    ca.der().clone()
}

fn trust(certs: &[CertificateDer<'static>]) -> TrustSet {
    TrustSet::new(certs.to_vec(), "test").unwrap()
}

fn check(set: &TrustSet, leaf: &CertificateDer<'_>, sent: &[CertificateDer<'_>]) -> Result<Verified, PkiError> {
    set.verify(leaf, sent, UnixTime::now(), Purpose::ClientAuth, None)
}

#[test]
fn a_chain_to_a_trusted_root_passes_with_its_intermediate_and_names_the_issuer() {
    let root = root("root");
    let mid = sub("mid", &root);
    let leaf = client(&mid);
    let verified = check(&trust(&[der(&root)]), &leaf, &[der(&mid)]).unwrap();
    assert_eq!(verified.issuer.as_ref(), Some(&der(&mid)));
    assert_eq!(verified.leaf.subject, "CN=dp");
}

#[test]
fn without_its_intermediate_the_chain_is_incomplete() {
    let root = root("root");
    let mid = sub("mid", &root);
    let err = check(&trust(&[der(&root)]), &client(&mid), &[]).unwrap_err();
    assert!(matches!(err, PkiError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("chain is incomplete"), "{err}");
}

#[test]
fn a_trusted_intermediate_is_enough_and_names_itself_as_issuer() {
    let root = root("root");
    let mid = sub("mid", &root);
    let verified = check(&trust(&[der(&mid)]), &client(&mid), &[]).unwrap();
    assert_eq!(verified.issuer.as_ref(), Some(&der(&mid)));
}

#[test]
fn a_pinned_leaf_passes_alone_and_its_sibling_does_not() {
    let root = root("root");
    let mid = sub("mid", &root);
    let pinned = client(&mid);
    let set = trust(std::slice::from_ref(&pinned));
    let verified = check(&set, &pinned, &[]).unwrap();
    assert!(verified.issuer.is_none(), "the issuer was neither sent nor trusted");
    assert!(check(&set, &pinned, &[der(&mid)]).unwrap().issuer.is_some());
    assert!(check(&set, &client(&mid), &[]).is_err());
}

#[test]
fn a_chain_ending_at_another_ca_is_not_trusted() {
    let ours = root("ours");
    let theirs = root("theirs");
    let err = check(&trust(&[der(&ours)]), &client(&theirs), &[der(&theirs)]).unwrap_err();
    assert!(matches!(err, PkiError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("is not trusted"), "{err}");
    assert_eq!(err.to_rustls(), rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
}

#[test]
fn the_leaf_must_list_the_purpose() {
    let root = root("root");
    let set = trust(&[der(&root)]);
    for usages in [vec![Eku::ServerAuth], vec![]] {
        let leaf = leaf_with("dp", &root, usages, (-1, 30));
        let err = check(&set, &leaf, &[]).unwrap_err();
        assert!(err.to_string().contains("lacks the extended key usage clientAuth"), "{err}");
    }
    let server = leaf_with("cp.example", &root, vec![Eku::ServerAuth], (-1, 30));
    let name = ServerName::try_from("cp.example").unwrap();
    set.verify(&server, &[], UnixTime::now(), Purpose::ServerAuth, Some(&name)).unwrap();
    let err = set.verify(&client(&root), &[], UnixTime::now(), Purpose::ServerAuth, Some(&name)).unwrap_err();
    assert!(err.to_string().contains("serverAuth"), "{err}");
}

#[test]
fn a_server_must_be_valid_for_the_name() {
    let root = root("root");
    let server = leaf_with("cp.example", &root, vec![Eku::ServerAuth], (-1, 30));
    let other = ServerName::try_from("other.example").unwrap();
    let err =
        trust(&[der(&root)]).verify(&server, &[], UnixTime::now(), Purpose::ServerAuth, Some(&other)).unwrap_err();
    assert!(err.to_string().contains("is not valid for the name other.example (it names: cp.example)"), "{err}");
}

#[test]
fn expired_and_not_yet_valid_leaves_say_so_pinned_or_not() {
    let root = root("root");
    let expired = leaf_with("dp", &root, vec![Eku::ClientAuth], (-10, -1));
    let early = leaf_with("dp", &root, vec![Eku::ClientAuth], (1, 10));
    for set in [trust(&[der(&root)]), trust(&[expired.clone(), early.clone()])] {
        let err = check(&set, &expired, &[]).unwrap_err();
        assert!(matches!(err, PkiError::Expired { which: "it", .. }), "{err}");
        let err = check(&set, &early, &[]).unwrap_err();
        assert!(matches!(err, PkiError::NotYetValid { .. }), "{err}");
        assert!(err.to_string().contains("not yet valid"), "{err}");
    }
}

#[test]
fn at_most_three_intermediates() {
    let root = root("root");
    let mut chain = vec![sub("m1", &root)];
    for i in 2..=4 {
        let next = sub(&format!("m{i}"), chain.last().unwrap());
        chain.push(next);
    }
    let sent: Vec<_> = chain.iter().rev().map(der).collect();
    let set = trust(&[der(&root)]);
    let err = check(&set, &client(chain.last().unwrap()), &sent).unwrap_err();
    assert!(err.to_string().contains("more than 3 intermediates"), "{err}");
    let three: Vec<_> = chain[..3].iter().rev().map(der).collect();
    check(&set, &client(&chain[2]), &three).unwrap();
}

#[test]
fn serials_print_as_openssl_does() {
    let root = root("root");
    let leaf = client(&root);
    let serial = info(&leaf).unwrap().serial;
    assert!(!serial.starts_with("00") && serial.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
}

/// A pinned leaf is trusted as itself only: a certificate signed with its key is refused.
#[test]
fn a_pinned_leaf_cannot_issue() {
    let root = root("root");
    let mut p = params("dp", (-1, 30));
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![Eku::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let pinned = CertifiedIssuer::signed_by(p, key, &root).unwrap();
    let set = trust(&[der(&pinned)]);
    check(&set, &der(&pinned), &[]).unwrap();
    let minted = client(&pinned);
    assert!(check(&set, &minted, &[]).is_err());
    // Sent along, the pinned leaf is refused as an issuer: it is not a CA.
    let err = check(&set, &minted, &[der(&pinned)]).unwrap_err();
    assert!(err.to_string().contains("EndEntityUsedAsCa"), "{err}");
}

/// A trusted CA that has expired authorises nothing, though webpki's anchors carry no dates.
#[test]
fn an_expired_trusted_ca_authorises_nothing() {
    let root = root("root");
    let mut p = ca_params("mid");
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(10);
    p.not_after = now - time::Duration::days(1);
    let mid = CertifiedIssuer::signed_by(p, KeyPair::generate().unwrap(), &root).unwrap();
    let err = check(&trust(&[der(&mid)]), &client(&mid), &[]).unwrap_err();
    assert!(matches!(err, PkiError::Expired { which: "the trusted CA it chains to", .. }), "{err}");
}

/// For OCSP, a pinned leaf's issuer must be the key that signed it, not a look-alike by name.
#[test]
fn a_pinned_leafs_issuer_is_the_one_whose_key_signed_it() {
    let real = root("ca");
    let fake = root("ca");
    let leaf = client(&real);
    let set = trust(std::slice::from_ref(&leaf));
    assert!(check(&set, &leaf, &[der(&fake)]).unwrap().issuer.is_none(), "a look-alike is not the issuer");
    assert_eq!(check(&set, &leaf, &[der(&fake), der(&real)]).unwrap().issuer, Some(der(&real)));
}

#[test]
fn a_long_chain_is_refused_before_any_work() {
    let root = root("root");
    let junk: Vec<_> = (0..MAX_SENT + 1).map(|i| der(&super::tests::root(&format!("j{i}")))).collect();
    let err = check(&trust(&[der(&root)]), &client(&root), &junk).unwrap_err();
    assert!(matches!(err, PkiError::TooManyIntermediates { .. }), "{err}");
}
