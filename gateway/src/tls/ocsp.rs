//! OCSP (RFC 6960): asks the responder named in a certificate's authority information access
//! whether the certificate is revoked, believes the answer only if the certificate's issuer (or a
//! responder it authorised) signed it and it is current, and remembers it until its `nextUpdate`,
//! so a reconnect storm costs the responder one request per certificate. The control plane runs it
//! on data plane certificates (`cluster_ocsp`). Messages are built and read with `x509-ocsp`;
//! signatures are checked with the TLS provider's algorithms.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use der::asn1::{AnyRef, BitString, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, SliceReader};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlReason, ExtendedKeyUsage};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};

/// The whole exchange with a responder: connect, TLS, request, response.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response read; a real one is a few KiB.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// How long an answer without `nextUpdate` counts: such a responder promises nothing, so this
/// bounds both the load on it and how late a revocation is noticed.
pub const NO_NEXT_UPDATE_TTL: Duration = Duration::from_secs(300);
/// How long a failure is remembered: long enough that the handshakes of a storm waiting on one
/// request share its failure instead of each waiting out their own timeout, short enough that a
/// responder back up is asked again soon.
pub const ERROR_TTL: Duration = Duration::from_secs(5);
/// The longest an answer is remembered, whatever its `nextUpdate` promises.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most answers remembered.
pub const CACHE_CAPACITY: usize = 10_000;
/// Clock difference tolerated between us and the responder on `thisUpdate`.
const SKEW: u64 = 300;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// Whether certificates are checked, and what an unanswered check means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspMode {
    /// No check.
    Off,
    /// A certificate whose status cannot be learned is refused.
    On,
    /// A certificate whose status cannot be learned is let in with a warning; revoked ones never.
    Optional,
}

/// What the responder said about a certificate it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked(Revoked),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// RFC 3339.
    pub since: String,
    /// RFC 5280's name of the reason, when the responder gave one.
    pub reason: Option<&'static str>,
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the certificate is revoked (since {}", self.since)?;
        if let Some(reason) = self.reason {
            write!(f, ", reason {reason}")?;
        }
        f.write_str(")")
    }
}

/// Why a certificate's status could not be learned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("the certificate names no OCSP responder (no OCSP URL in its authority information access)")]
    NoResponder,
    #[error("the certificate's issuer is unknown (neither sent nor trusted), so its OCSP request cannot be made")]
    NoIssuer,
    #[error("cannot read {which} certificate: {why}")]
    Certificate { which: &'static str, why: String },
    #[error("the OCSP responder {url} cannot be used: {why}")]
    UnsupportedUrl { url: String, why: &'static str },
    #[error("the OCSP responder {url} is unreachable: {why}")]
    Unreachable { url: String, why: String },
    #[error("the OCSP responder {url} did not answer within {TIMEOUT:?}")]
    Timeout { url: String },
    #[error("the OCSP responder {url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("the OCSP responder {url} sent more than {MAX_RESPONSE} bytes")]
    TooLarge { url: String },
    #[error("the OCSP responder {url} sent a bad response: {fault}")]
    BadResponse { url: String, fault: ResponseFault },
    #[error("the OCSP responder {url} does not know the certificate (status unknown)")]
    UnknownCertificate { url: String },
}

/// What is wrong with a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseFault {
    #[error("it is not a valid OCSP response ({0})")]
    Malformed(String),
    #[error("its status is {0}, not successful")]
    NotSuccessful(&'static str),
    #[error("its type {0} is not the basic OCSP response")]
    NotBasic(String),
    #[error("it has no answer for the certificate asked about")]
    NoAnswer,
    #[error("its thisUpdate {0} is in the future")]
    NotYetValid(String),
    #[error("it is stale: its nextUpdate {0} has passed")]
    Stale(String),
    #[error("it is stale: it has no nextUpdate and its thisUpdate {0} is older than {NO_NEXT_UPDATE_TTL:?}")]
    TooOld(String),
    #[error("its signature algorithm {0} is not supported for the signer's key")]
    UnsupportedAlgorithm(String),
    #[error("its signature does not verify with the key of the certificate's issuer or of a responder it authorised")]
    BadSignature,
    #[error("it is signed by {signer}, a responder the certificate's issuer did not authorise: {why}")]
    Unauthorised { signer: String, why: &'static str },
}

/// Why a certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Revoked(Revoked),
    #[error("its revocation status is unknown: {0}")]
    Unchecked(OcspError),
}

/// The outcome of a check under the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not revoked, or checks are off.
    Allow,
    /// `optional`: the status could not be learned; let in, and say why.
    AllowUnchecked(OcspError),
    Refuse(Refusal),
}

/// What the policy makes of a check's result.
pub fn decide(mode: OcspMode, checked: Result<Status, OcspError>) -> Decision {
    match (mode, checked) {
        (OcspMode::Off, _) | (_, Ok(Status::Good)) => Decision::Allow,
        (_, Ok(Status::Revoked(revoked))) => Decision::Refuse(Refusal::Revoked(revoked)),
        (OcspMode::On, Err(error)) => Decision::Refuse(Refusal::Unchecked(error)),
        (OcspMode::Optional, Err(error)) => Decision::AllowUnchecked(error),
    }
}

/// A responder's verified answer about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: AnswerStatus,
    /// Unix seconds; when the responder will have newer information.
    pub next_update: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerStatus {
    Known(Status),
    Unknown,
}

/// Answers are remembered per issuer key and serial: the CertID without the name hash, which the
/// key hash already pins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    issuer_key: Vec<u8>,
    serial: Vec<u8>,
}

struct Cached {
    checked: Result<Status, OcspError>,
    until: Instant,
}

/// The checker: its mode, its cache and how it reaches `https://` responders.
pub struct Ocsp {
    mode: OcspMode,
    /// For `https://` responders; `None` refuses them.
    https: Option<Arc<rustls::ClientConfig>>,
    cache: Mutex<HashMap<Key, Cached>>,
    /// One request per certificate at a time; the others wait for its answer.
    inflight: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    requests: AtomicU64,
}

impl Ocsp {
    pub fn new(mode: OcspMode, https: Option<Arc<rustls::ClientConfig>>) -> Ocsp {
        Ocsp {
            mode,
            https,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    pub fn mode(&self) -> OcspMode {
        self.mode
    }

    /// How many requests went to responders.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Checks `leaf`, issued by `issuer`, and applies the mode.
    pub async fn check(&self, leaf: &CertificateDer<'_>, issuer: Option<&CertificateDer<'_>>) -> Decision {
        if self.mode == OcspMode::Off {
            return Decision::Allow;
        }
        decide(self.mode, self.status(leaf, issuer).await)
    }

    /// The status of `leaf`, from the cache or the responder.
    pub async fn status(
        &self,
        leaf: &CertificateDer<'_>,
        issuer: Option<&CertificateDer<'_>>,
    ) -> Result<Status, OcspError> {
        let issuer = issuer.ok_or(OcspError::NoIssuer)?;
        let leaf = Certificate::from_der(leaf)
            .map_err(|e| OcspError::Certificate { which: "the peer's", why: e.to_string() })?;
        let issuer = Certificate::from_der(issuer)
            .map_err(|e| OcspError::Certificate { which: "the issuer's", why: e.to_string() })?;
        let url = responder_url(&leaf)?;
        let id = cert_id(&leaf, &issuer)?;
        let key =
            Key { issuer_key: id.issuer_key_hash.as_bytes().to_vec(), serial: id.serial_number.as_bytes().to_vec() };
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let gate = lock(&self.inflight).entry(key.clone()).or_default().clone();
        let _turn = gate.lock().await;
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let asked = self.ask(&url, &id, &issuer).await;
        let checked = match asked {
            Ok(Answer { status: AnswerStatus::Known(status), next_update }) => {
                let now = unix_now();
                let ttl = next_update
                    .map_or(NO_NEXT_UPDATE_TTL, |next| Duration::from_secs(next.saturating_sub(now)))
                    .min(MAX_CACHE_TTL);
                self.remember(key.clone(), Ok(status.clone()), ttl);
                Ok(status)
            }
            Ok(Answer { status: AnswerStatus::Unknown, .. }) => Err(OcspError::UnknownCertificate { url }),
            Err(error) => Err(error),
        };
        if let Err(error) = &checked {
            self.remember(key.clone(), Err(error.clone()), ERROR_TTL);
        }
        lock(&self.inflight).remove(&key);
        checked
    }

    fn cached(&self, key: &Key) -> Option<Result<Status, OcspError>> {
        let cache = lock(&self.cache);
        cache.get(key).filter(|c| c.until > Instant::now()).map(|c| c.checked.clone())
    }

    fn remember(&self, key: Key, checked: Result<Status, OcspError>, ttl: Duration) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_CAPACITY
                && let Some(soonest) = cache.iter().min_by_key(|(_, c)| c.until).map(|(k, _)| k.clone())
            {
                cache.remove(&soonest);
            }
        }
        cache.insert(key, Cached { checked, until: now + ttl });
    }

    /// One exchange with the responder at `url`, and the verified answer.
    async fn ask(&self, url: &str, id: &CertId, issuer: &Certificate) -> Result<Answer, OcspError> {
        let request =
            request_der(id).map_err(|e| OcspError::Certificate { which: "the peer's", why: e.to_string() })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = match tokio::time::timeout(TIMEOUT, self.post(url, request)).await {
            Ok(body) => body?,
            Err(_) => return Err(OcspError::Timeout { url: url.to_string() }),
        };
        evaluate(&body, id, issuer, unix_now()).map_err(|fault| OcspError::BadResponse { url: url.to_string(), fault })
    }

    /// POSTs `request` to `url` (RFC 6960 appendix A.1) and returns the response body.
    async fn post(&self, url: &str, request: Vec<u8>) -> Result<Vec<u8>, OcspError> {
        let unsupported = |why| OcspError::UnsupportedUrl { url: url.to_string(), why };
        let parsed = url::Url::parse(url).map_err(|_| unsupported("it is not a URL"))?;
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(unsupported("it has no host")),
        };
        let port = parsed.port_or_known_default().ok_or_else(|| unsupported("it has no port"))?;
        let tls = match parsed.scheme() {
            "http" => None,
            "https" => match &self.https {
                Some(tls) => Some(tls.clone()),
                None => return Err(unsupported("https responders are not supported here; use an http:// URL")),
            },
            _ => return Err(unsupported("only http:// and https:// responders are supported")),
        };
        let unreachable = |why: String| OcspError::Unreachable { url: url.to_string(), why };
        let tcp =
            tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let path = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let authority = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_string(),
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/ocsp-request")
            .header(hyper::header::ACCEPT, "application/ocsp-response")
            .body(Full::new(Bytes::from(request)))
            .map_err(|_| unsupported("its path cannot be sent in a request"))?;
        match tls {
            None => exchange(tcp, request, url).await,
            Some(config) => {
                let name = ServerName::try_from(host).map_err(|_| unsupported("its host is not a valid TLS name"))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unreachable(format!("TLS: {e}")))?;
                exchange(stream, request, url).await
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One HTTP/1.1 request on `stream`; the body read is bounded by [`MAX_RESPONSE`].
async fn exchange<S>(stream: S, request: hyper::Request<Full<Bytes>>, url: &str) -> Result<Vec<u8>, OcspError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let unreachable = |why: String| OcspError::Unreachable { url: url.to_string(), why };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unreachable(e.to_string()))?;
    // The connection ends with this exchange; the deadline bounds it should the responder stall.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(TIMEOUT, connection).await;
    });
    let response = sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))?;
    if response.status() != hyper::StatusCode::OK {
        return Err(OcspError::HttpStatus { url: url.to_string(), status: response.status().as_u16() });
    }
    let declared = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(OcspError::TooLarge { url: url.to_string() });
    }
    match Limited::new(response.into_body(), MAX_RESPONSE).collect().await {
        Ok(body) => Ok(body.to_bytes().to_vec()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(OcspError::TooLarge { url: url.to_string() })
        }
        Err(error) => Err(unreachable(error.to_string())),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The first OCSP URL in the certificate's authority information access.
pub fn responder_url(leaf: &Certificate) -> Result<String, OcspError> {
    let aia = leaf.tbs_certificate.get::<AuthorityInfoAccessSyntax>().map_err(|e| OcspError::Certificate {
        which: "the peer's",
        why: format!("authority information access: {e}"),
    })?;
    let Some((_, aia)) = aia else { return Err(OcspError::NoResponder) };
    aia.0
        .iter()
        .filter(|d| d.access_method == OID_AD_OCSP)
        .find_map(|d| match &d.access_location {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .ok_or(OcspError::NoResponder)
}

/// The CertID responders index by: SHA-1 of the issuer's name and of its public key, and the serial.
pub fn cert_id(leaf: &Certificate, issuer: &Certificate) -> Result<CertId, OcspError> {
    let bad = |e: der::Error| OcspError::Certificate { which: "the issuer's", why: e.to_string() };
    let name = issuer.tbs_certificate.subject.to_der().map_err(bad)?;
    let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: OID_SHA1, parameters: Some(Null.into()) },
        issuer_name_hash: OctetString::new(Sha1::digest(name).to_vec()).map_err(bad)?,
        issuer_key_hash: OctetString::new(Sha1::digest(key).to_vec()).map_err(bad)?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    })
}

/// The DER of a request for `id`, unsigned and without a nonce (answers are cached, so a nonce
/// would buy nothing and many responders ignore it).
pub fn request_der(id: &CertId) -> Result<Vec<u8>, der::Error> {
    OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request { req_cert: id.clone(), single_request_extensions: None }],
            ..TbsRequest::default()
        },
        optional_signature: None,
    }
    .to_der()
}

/// Reads a response to a request for `id` and checks it: successful, basic, signed by `issuer` or
/// a responder it authorised, current at `now` (unix seconds), with an answer for `id`.
pub fn evaluate(body: &[u8], id: &CertId, issuer: &Certificate, now: u64) -> Result<Answer, ResponseFault> {
    let malformed = |e: der::Error| ResponseFault::Malformed(e.to_string());
    let response = OcspResponse::from_der(body).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(ResponseFault::NotSuccessful(status_name(response.response_status)));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| ResponseFault::Malformed("successful, but without responseBytes".into()))?;
    if bytes.response_type != OID_OCSP_BASIC {
        return Err(ResponseFault::NotBasic(bytes.response_type.to_string()));
    }
    let raw = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(raw).map_err(malformed)?;
    let signed = first_element(raw).map_err(malformed)?;
    check_signature(&basic, signed, issuer, now)?;

    let single =
        basic.tbs_response_data.responses.iter().find(|r| same_cert(&r.cert_id, id)).ok_or(ResponseFault::NoAnswer)?;
    if secs(&single.this_update) > now.saturating_add(SKEW) {
        return Err(ResponseFault::NotYetValid(rfc3339(&single.this_update)));
    }
    match &single.next_update {
        Some(next) if secs(next) <= now => return Err(ResponseFault::Stale(rfc3339(next))),
        Some(_) => {}
        // Without a nonce an old signed answer could be replayed: one that promises no next update
        // counts only while it is fresh.
        None if secs(&single.this_update).saturating_add(NO_NEXT_UPDATE_TTL.as_secs() + SKEW) < now => {
            return Err(ResponseFault::TooOld(rfc3339(&single.this_update)));
        }
        None => {}
    }
    let status = match &single.cert_status {
        CertStatus::Good(_) => AnswerStatus::Known(Status::Good),
        CertStatus::Revoked(info) => AnswerStatus::Known(Status::Revoked(Revoked {
            since: rfc3339(&info.revocation_time),
            reason: info.revocation_reason.map(reason_name),
        })),
        CertStatus::Unknown(_) => AnswerStatus::Unknown,
    };
    Ok(Answer { status, next_update: single.next_update.as_ref().map(secs) })
}

fn same_cert(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// The response must be signed by the issuer itself or by a certificate the issuer issued with
/// the extended key usage OCSPSigning, included in the response (RFC 6960 4.2.2.2).
fn check_signature(
    basic: &BasicOcspResponse,
    signed: &[u8],
    issuer: &Certificate,
    now: u64,
) -> Result<(), ResponseFault> {
    let algorithm = &basic.signature_algorithm;
    let signature = bits(&basic.signature)?;
    let mut unsupported = false;
    match verify(&issuer.tbs_certificate.subject_public_key_info, algorithm, signed, signature) {
        Ok(()) => return Ok(()),
        Err(SigError::Unsupported) => unsupported = true,
        Err(SigError::Invalid) => {}
    }
    let mut unauthorised = None;
    for cert in basic.certs.iter().flatten().filter(|c| *c != issuer) {
        match verify(&cert.tbs_certificate.subject_public_key_info, algorithm, signed, signature) {
            Ok(()) => match authorised(cert, issuer, now) {
                Ok(()) => return Ok(()),
                Err(why) => {
                    unauthorised =
                        Some(ResponseFault::Unauthorised { signer: cert.tbs_certificate.subject.to_string(), why })
                }
            },
            Err(SigError::Unsupported) => unsupported = true,
            Err(SigError::Invalid) => {}
        }
    }
    Err(unauthorised.unwrap_or(if unsupported {
        ResponseFault::UnsupportedAlgorithm(algorithm.oid.to_string())
    } else {
        ResponseFault::BadSignature
    }))
}

/// Whether `cert` may sign OCSP answers for certificates `issuer` issued.
fn authorised(cert: &Certificate, issuer: &Certificate, now: u64) -> Result<(), &'static str> {
    let tbs = &cert.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err("it was not issued by the certificate's issuer");
    }
    let eku = tbs.get::<ExtendedKeyUsage>().map_err(|_| "its extended key usage cannot be read")?;
    if !eku.is_some_and(|(_, eku)| eku.0.contains(&OID_KP_OCSP_SIGNING)) {
        return Err("it lacks the extended key usage OCSPSigning");
    }
    let validity = &tbs.validity;
    if now < validity.not_before.to_unix_duration().as_secs() || now > validity.not_after.to_unix_duration().as_secs() {
        return Err("it is expired or not yet valid");
    }
    let der = cert.to_der().map_err(|_| "it cannot be encoded")?;
    let signed = first_element(&der).map_err(|_| "it cannot be encoded")?;
    let signature = bits(&cert.signature).map_err(|_| "its signature is malformed")?;
    verify(&issuer.tbs_certificate.subject_public_key_info, &cert.signature_algorithm, signed, signature)
        .map_err(|_| "its signature does not verify with the issuer's key")
}

enum SigError {
    Unsupported,
    Invalid,
}

/// Checks `signature` over `message` by `key` with the TLS provider's algorithm for this key type
/// and signature algorithm.
fn verify(
    key: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SigError> {
    let key_alg = contents(&key.algorithm).ok_or(SigError::Unsupported)?;
    let sig_alg = contents(algorithm).ok_or(SigError::Unsupported)?;
    let provider = super::provider();
    let found = provider
        .signature_verification_algorithms
        .all
        .iter()
        .find(|a| a.public_key_alg_id().as_ref() == key_alg && a.signature_alg_id().as_ref() == sig_alg)
        .ok_or(SigError::Unsupported)?;
    found.verify_signature(key.subject_public_key.raw_bytes(), message, signature).map_err(|_| SigError::Invalid)
}

/// An AlgorithmIdentifier's contents without its SEQUENCE header, as rustls names algorithms.
fn contents(algorithm: &AlgorithmIdentifierOwned) -> Option<Vec<u8>> {
    let der = algorithm.to_der().ok()?;
    AnyRef::from_der(&der).ok().map(|any| any.value().to_vec())
}

/// The bytes of a signature BIT STRING (whole octets only).
fn bits(signature: &BitString) -> Result<&[u8], ResponseFault> {
    signature.as_bytes().ok_or_else(|| ResponseFault::Malformed("the signature is not whole bytes".into()))
}

/// The exact bytes of the first element of a SEQUENCE: what its signature covers.
fn first_element(der: &[u8]) -> Result<&[u8], der::Error> {
    let outer = AnyRef::from_der(der)?;
    let mut reader = SliceReader::new(outer.value())?;
    reader.tlv_bytes()
}

fn secs(time: &OcspGeneralizedTime) -> u64 {
    time.0.to_unix_duration().as_secs()
}

fn rfc3339(time: &OcspGeneralizedTime) -> String {
    time.0.to_date_time().to_string()
}

fn status_name(status: OcspResponseStatus) -> &'static str {
    match status {
        OcspResponseStatus::Successful => "successful",
        OcspResponseStatus::MalformedRequest => "malformedRequest",
        OcspResponseStatus::InternalError => "internalError",
        OcspResponseStatus::TryLater => "tryLater",
        OcspResponseStatus::SigRequired => "sigRequired",
        OcspResponseStatus::Unauthorized => "unauthorized",
    }
}

fn reason_name(reason: CrlReason) -> &'static str {
    match reason {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}

#[cfg(test)]
mod tests;
