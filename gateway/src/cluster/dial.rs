//! How a data plane reaches its control plane, hop by hop: resolve, connect (to the CP, or to the
//! forward proxy), TLS to an `https://` proxy, `CONNECT cp:port` with Basic auth, then the cluster
//! mTLS handshake with the cluster SNI, exactly as without a proxy. Every failure names its hop and
//! the addresses involved (never the proxy's credentials), so a log line or `gateway cluster check`
//! says which hop to fix.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::{ClusterTlsError, DpTls};
use crate::conf::{ClusterMtls, HostPort, ProxyScheme, ProxyServer, Settings};
use crate::tls::pki::PkiError;

/// A byte stream: TCP, or TLS to the proxy.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The steps of the path, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    Resolve,
    Connect,
    ProxyTls,
    ProxyConnect,
    ClusterTls,
    ClusterCertificate,
    Outlet,
    /// The telemetry link's upgrade.
    Ingest,
}

impl Hop {
    pub fn label(self) -> &'static str {
        match self {
            Hop::Resolve => "resolve",
            Hop::Connect => "connect",
            Hop::ProxyTls => "proxy TLS",
            Hop::ProxyConnect => "CONNECT",
            Hop::ClusterTls => "CP TLS",
            Hop::ClusterCertificate => "CP certificate",
            Hop::Outlet => "/v1/outlet handshake",
            Hop::Ingest => "/v1/ingest handshake",
        }
    }
}

/// A failed hop: which, between what, and why.
#[derive(Debug, Clone)]
pub struct HopError {
    pub hop: Hop,
    pub message: String,
    /// What usually fixes it.
    pub hint: &'static str,
}

impl fmt::Display for HopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.hop.label(), self.message)
    }
}

impl std::error::Error for HopError {}

/// The forward proxy and how to speak TLS to it.
#[derive(Clone)]
pub struct Proxy {
    pub server: ProxyServer,
    /// For `https://` proxies.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub struct Dialer {
    pub control_plane: HostPort,
    /// The cluster identity and trust; reloadable.
    pub cluster_tls: Arc<DpTls>,
    /// The SNI sent and the name required of the control plane's certificate.
    pub server_name: ServerName<'static>,
    pub proxy: Option<Proxy>,
    /// Bounds each hop.
    pub timeout: Duration,
}

/// Told of each hop that succeeded, with a detail (`cluster check` prints them).
pub type Report<'a> = &'a mut (dyn FnMut(Hop, String) + Send);

impl Dialer {
    /// How this data plane reaches its control plane: mTLS with the cluster identity, through the
    /// forward proxy when `cluster_use_proxy` is on.
    pub fn from_settings(settings: &Settings) -> Result<Dialer, ClusterTlsError> {
        let tls = DpTls::new(settings)?;
        let proxy = match (&settings.proxy_server, settings.cluster_use_proxy) {
            (Some(server), true) => {
                let tls = match server.scheme {
                    ProxyScheme::Https => {
                        if !settings.proxy_server_ssl_verify {
                            tracing::warn!(proxy = %server, "proxy_server_ssl_verify = off: the proxy's certificate is not checked (the cluster link inside is)");
                        }
                        let roots = crate::tls::trust::roots(&settings.lua_ssl_trusted_certificate)?;
                        Some(proxy_tls(roots, settings.proxy_server_ssl_verify)?)
                    }
                    ProxyScheme::Http => None,
                };
                Some(Proxy { server: server.clone(), tls })
            }
            _ => None,
        };
        Ok(Dialer {
            control_plane: settings.cluster_control_plane.clone(),
            server_name: tls.server_name().clone(),
            cluster_tls: Arc::new(tls),
            proxy,
            timeout: Duration::from_secs(10),
        })
    }

    /// The way to the control plane's telemetry listener (`cluster_telemetry_endpoint`): the same
    /// identity, trust and forward proxy; in pki mode the name `cluster_telemetry_server_name`, else
    /// `cluster_server_name`, else the endpoint's host.
    pub fn for_telemetry(&self, settings: &Settings) -> Result<Dialer, ClusterTlsError> {
        let endpoint = settings.cluster_telemetry_endpoint.clone();
        let server_name = match self.cluster_tls.mode() {
            ClusterMtls::Shared => self.server_name.clone(),
            ClusterMtls::Pki => {
                let name =
                    settings.cluster_telemetry_server_name.as_deref().or(settings.cluster_server_name.as_deref());
                super::tls::pki_server_name(name, &endpoint)?
            }
        };
        Ok(Dialer {
            control_plane: endpoint,
            cluster_tls: self.cluster_tls.clone(),
            server_name,
            proxy: self.proxy.clone(),
            timeout: self.timeout,
        })
    }

    /// The mTLS stream to the control plane, through the proxy when there is one.
    pub async fn dial(&self, report: Report<'_>) -> Result<TlsStream<Box<dyn Io>>, HopError> {
        let cp = &self.control_plane;
        let stream: Box<dyn Io> = match &self.proxy {
            None => Box::new(self.tcp(&cp.host, cp.port, "the control plane", report).await?),
            Some(proxy) => self.tunnel(proxy, report).await?,
        };
        let via = self.proxy.as_ref().map(|p| format!(" through {}", p.server)).unwrap_or_default();
        let name = self.server_name.clone();
        let handshake = TlsConnector::from(self.cluster_tls.config()).connect(name.clone(), stream);
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(tls)) => {
                report(Hop::ClusterTls, format!("TLS with {cp}{via} as {}", name.to_str()));
                let how = match self.cluster_tls.mode() {
                    ClusterMtls::Shared => "the control plane presented the pinned cluster certificate".to_string(),
                    ClusterMtls::Pki => format!(
                        "the control plane's certificate chains to a trusted CA, allows serverAuth and is valid for {}",
                        name.to_str()
                    ),
                };
                report(Hop::ClusterCertificate, how);
                Ok(tls)
            }
            Ok(Err(e)) => Err(self.handshake_failed(&e, &via)),
            Err(_) => Err(HopError {
                hop: Hop::ClusterTls,
                message: format!("TLS handshake with the control plane {cp}{via}: no answer within {:?}", self.timeout),
                hint: "something accepted the connection but does not speak TLS",
            }),
        }
    }

    /// A failed cluster handshake, by who refused what.
    fn handshake_failed(&self, e: &std::io::Error, via: &str) -> HopError {
        let cp = &self.control_plane;
        if let Some(refusal) = PkiError::from_io(e) {
            return HopError {
                hop: Hop::ClusterCertificate,
                message: format!("the control plane {cp}{via} is refused: {refusal}"),
                hint: pki_hint(refusal),
            };
        }
        if let Some(refused) = refused_by_control_plane(e, &format!("{cp}{via}")) {
            return refused;
        }
        let certificate = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            // A verifier's own error (the shared mode's pin mismatch) in its words.
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
                Some(other.0.to_string())
            }
            Some(rustls::Error::InvalidCertificate(error)) => Some(format!("invalid peer certificate: {error}")),
            _ => None,
        };
        if let Some(why) = certificate {
            HopError {
                hop: Hop::ClusterCertificate,
                message: format!("the control plane {cp}{via}: {why}"),
                hint: match self.cluster_tls.mode() {
                    ClusterMtls::Shared => {
                        "cluster_cert must be the same file on the control plane and the data planes (shared mode)"
                    }
                    ClusterMtls::Pki => "check cluster_ca_cert and the control plane's certificate",
                },
            }
        } else {
            HopError {
                hop: Hop::ClusterTls,
                message: format!("TLS handshake with the control plane {cp}{via}: {e}"),
                hint: "is cluster_control_plane the control plane's cluster_listen (TLS), not another service?",
            }
        }
    }

    async fn tcp(
        &self,
        host: &str,
        port: u16,
        what: &str,
        report: Report<'_>,
    ) -> Result<tokio::net::TcpStream, HopError> {
        let target = HostPort { host: host.to_string(), port };
        let addresses: Vec<std::net::SocketAddr> =
            match tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => {
                    return Err(HopError {
                        hop: Hop::Resolve,
                        message: format!("cannot resolve {what} {target}: {e}"),
                        hint: "check the host name and this machine's DNS",
                    });
                }
                Err(_) => {
                    return Err(HopError {
                        hop: Hop::Resolve,
                        message: format!("resolving {what} {target} took longer than {:?}", self.timeout),
                        hint: "check this machine's DNS",
                    });
                }
            };
        report(
            Hop::Resolve,
            format!("{what} {target} is {}", addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
        );
        let connect = tokio::net::TcpStream::connect(&addresses[..]);
        let failed = |cause: String| HopError {
            hop: Hop::Connect,
            message: format!("connecting to {what} {target}: {cause}"),
            hint: "is it running and listening there, and does the firewall let this machine reach it?",
        };
        let stream = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed(format!("no answer within {:?}", self.timeout))),
        };
        let _ = stream.set_nodelay(true);
        report(Hop::Connect, format!("connected to {what} {target}"));
        Ok(stream)
    }

    async fn tunnel(&self, proxy: &Proxy, report: Report<'_>) -> Result<Box<dyn Io>, HopError> {
        let server = &proxy.server;
        let tcp = self.tcp(&server.host, server.port, "the proxy", report).await?;
        let mut stream: Box<dyn Io> = match (server.scheme, &proxy.tls) {
            (ProxyScheme::Https, Some(tls)) => {
                let name = ServerName::try_from(server.host.clone()).map_err(|e| HopError {
                    hop: Hop::ProxyTls,
                    message: format!("{:?} cannot be a TLS name: {e}", server.host),
                    hint: "proxy_server must name the proxy by a DNS name or an IP address",
                })?;
                let handshake = TlsConnector::from(tls.clone()).connect(name, tcp);
                match tokio::time::timeout(self.timeout, handshake).await {
                    Ok(Ok(tls)) => {
                        report(Hop::ProxyTls, format!("TLS with the proxy {server}"));
                        Box::new(tls)
                    }
                    Ok(Err(e)) => {
                        return Err(HopError {
                            hop: Hop::ProxyTls,
                            message: format!("TLS handshake with the proxy {server}: {}", explain_tls(&e)),
                            hint: "the proxy's CA must be in lua_ssl_trusted_certificate and its certificate must name the host in proxy_server (or set proxy_server_ssl_verify = off)",
                        });
                    }
                    Err(_) => {
                        return Err(HopError {
                            hop: Hop::ProxyTls,
                            message: format!(
                                "TLS handshake with the proxy {server}: no answer within {:?}",
                                self.timeout
                            ),
                            hint: "is proxy_server an https:// proxy? a plain HTTP proxy needs http://",
                        });
                    }
                }
            }
            _ => Box::new(tcp),
        };
        let cp = &self.control_plane;
        let mut request = format!("CONNECT {cp} HTTP/1.1\r\nHost: {cp}\r\n");
        if let Some(credentials) = &server.credentials {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", credentials.user, credentials.password));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            stream.flush().await?;
            read_head(&mut stream).await
        };
        let head = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => {
                return Err(HopError {
                    hop: Hop::ProxyConnect,
                    message: format!("CONNECT {cp} through the proxy {server}: {e}"),
                    hint: "the proxy closed the connection: is it an HTTP proxy (and http:// vs https:// right)?",
                });
            }
            Err(_) => {
                return Err(HopError {
                    hop: Hop::ProxyConnect,
                    message: format!("CONNECT {cp} through the proxy {server}: no answer within {:?}", self.timeout),
                    hint: "the proxy accepted the connection but does not answer CONNECT",
                });
            }
        };
        let status_line = head.lines().next().unwrap_or_default().to_string();
        let status: u16 = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let refused = |message: String, hint: &'static str| HopError { hop: Hop::ProxyConnect, message, hint };
        let said = format!("the proxy {server} answered CONNECT {cp} with \"{status_line}\"");
        match status {
            200..=299 => {
                report(Hop::ProxyConnect, format!("the proxy {server} opened a tunnel to {cp} (\"{status_line}\")"));
                Ok(stream)
            }
            407 if server.credentials.is_none() => Err(refused(
                format!("{said}: the proxy wants credentials"),
                "put user:password in proxy_server (http://user:pass@host:port)",
            )),
            407 | 401 => Err(refused(
                format!("{said}: the proxy rejected the credentials"),
                "check the user and password in proxy_server (percent-encode special characters, # as %23)",
            )),
            403 => Err(refused(
                format!("{said}: the proxy forbids tunnels to this host or port"),
                "ask the proxy's owners to allow CONNECT to the control plane's host and port",
            )),
            500..=599 => Err(refused(
                format!("{said}: the proxy could not reach the control plane"),
                "from the proxy, the control plane's address must resolve and be reachable",
            )),
            _ => Err(refused(said, "the proxy does not support CONNECT as expected")),
        }
    }
}

/// What fixes a refused control-plane certificate.
fn pki_hint(e: &PkiError) -> &'static str {
    match e {
        PkiError::Untrusted { .. } | PkiError::Incomplete { .. } | PkiError::BadTrusted { .. } => {
            "cluster_ca_cert (or lua_ssl_trusted_certificate) must hold the CA that issued the control plane's certificate, and the control plane must send its intermediates in its cluster_cert"
        }
        PkiError::MissingEku { .. } => "the control plane's certificate must be issued with EKU serverAuth",
        PkiError::NameMismatch { .. } => {
            "cluster_server_name (else the host in cluster_control_plane) must be a name in the control plane's certificate"
        }
        PkiError::Expired { .. } | PkiError::NotYetValid { .. } => {
            "renew the control plane's certificate (and check both machines' clocks)"
        }
        _ => "check the control plane's cluster_cert",
    }
}

/// The control plane refused this data plane's certificate: TLS 1.2 says so during the handshake,
/// TLS 1.3 on the first read after it, as an alert. The alert names the reason.
pub fn refused_by_control_plane(e: &std::io::Error, cp: &str) -> Option<HopError> {
    use rustls::AlertDescription as A;
    let Some(rustls::Error::AlertReceived(alert)) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return None;
    };
    let (why, hint) = match alert {
        A::UnknownCA => (
            "it does not trust its issuer (unknown_ca)",
            "the control plane's cluster_ca_cert must hold this data plane's CA (or its certificate), and cluster_cert must include the intermediates",
        ),
        A::CertificateExpired => (
            "it has expired or is not yet valid (certificate_expired)",
            "renew this data plane's cluster_cert (and check both machines' clocks)",
        ),
        A::UnsupportedCertificate => (
            "it does not allow TLS client authentication (unsupported_certificate)",
            "issue this data plane's certificate with EKU clientAuth",
        ),
        A::CertificateRevoked => ("it is revoked (certificate_revoked)", "issue this data plane a new certificate"),
        A::BadCertificate | A::CertificateUnknown | A::DecryptError => (
            "it is not the certificate it expects",
            "shared mode: cluster_cert must be the same file on both sides; pki: a certificate its cluster_ca_cert trusts",
        ),
        A::CertificateRequired => ("none was sent (certificate_required)", "set cluster_cert and cluster_cert_key"),
        _ => return None,
    };
    Some(HopError {
        hop: Hop::ClusterCertificate,
        message: format!("the control plane {cp} refused this data plane's certificate: {why}"),
        hint,
    })
}

/// The control plane's 403 at the WebSocket upgrade, when it names why it refused this data
/// plane's certificate after the handshake (OCSP): the certificate hop, with its reason.
pub fn refused_at_upgrade(response: &hyper::Response<Option<Vec<u8>>>, cp: &str) -> Option<HopError> {
    use super::protocol::{REFUSAL_HEADER, Refusal};
    let refusal = response.headers().get(REFUSAL_HEADER)?.to_str().ok().and_then(Refusal::parse)?;
    let (why, hint) = match refusal {
        Refusal::CertificateRevoked => {
            ("it is revoked", "its OCSP responder says this certificate is revoked: issue this data plane a new one")
        }
        Refusal::CertificateStatusUnknown => (
            "its revocation status is unknown",
            "the control plane (cluster_ocsp = on) must reach the OCSP responder named in this certificate's authority information access and get a valid answer",
        ),
    };
    // The control plane's own words, when it sent them: short, printable, one line.
    let detail: String = response
        .body()
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(400)
        .collect();
    let detail = if detail.trim().is_empty() { why.to_string() } else { detail.trim().to_string() };
    Some(HopError {
        hop: Hop::ClusterCertificate,
        message: format!(
            "the control plane {cp} refused this data plane's certificate ({}): {detail}",
            refusal.as_str()
        ),
        hint,
    })
}

/// Reads an HTTP response head (up to the blank line), byte by byte so nothing of the tunnel after it
/// is consumed.
async fn read_head(stream: &mut Box<dyn Io>) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(std::io::Error::other("the answer's head is larger than 16 KiB"));
        }
        let byte = stream.read_u8().await?;
        head.push(byte);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A TLS failure in words, naming the usual certificate problems.
fn explain_tls(e: &std::io::Error) -> String {
    use rustls::CertificateError;
    let Some(rustls::Error::InvalidCertificate(cert)) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match cert {
        CertificateError::UnknownIssuer => {
            "its certificate is not trusted (its issuer is not in lua_ssl_trusted_certificate)".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("its certificate does not name this host ({e})")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("its certificate has expired ({e})")
        }
        _ => e.to_string(),
    }
}

/// The TLS client for an `https://` proxy: verified against `roots` for the proxy's name, or, with
/// `proxy_server_ssl_verify = off`, not verified at all (the handshake signature still is). The
/// cluster link inside the tunnel is verified on its own either way.
pub fn proxy_tls(roots: rustls::RootCertStore, verify: bool) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = crate::tls::provider();
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = if verify {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(UncheckedProxy(provider))).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `proxy_server_ssl_verify = off` (Kong's documented opt-out): any proxy certificate is accepted.
#[derive(Debug)]
struct UncheckedProxy(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for UncheckedProxy {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(refusal: Option<&str>, body: &str) -> hyper::Response<Option<Vec<u8>>> {
        let mut response = hyper::Response::new(Some(body.as_bytes().to_vec()));
        *response.status_mut() = hyper::StatusCode::FORBIDDEN;
        if let Some(value) = refusal {
            response.headers_mut().insert(super::super::protocol::REFUSAL_HEADER, value.parse().unwrap());
        }
        response
    }

    #[test]
    fn a_refusal_at_the_upgrade_is_named_at_the_certificate_hop() {
        let revoked = answer(Some("certificate-revoked"), "the certificate is revoked (since 2025-01-02T03:04:05Z)\n");
        let error = refused_at_upgrade(&revoked, "cp:8005").unwrap();
        assert_eq!(error.hop, Hop::ClusterCertificate);
        assert_eq!(
            error.to_string(),
            "CP certificate failed: the control plane cp:8005 refused this data plane's certificate (certificate-revoked): the certificate is revoked (since 2025-01-02T03:04:05Z)"
        );
        let unknown = refused_at_upgrade(&answer(Some("certificate-status-unknown"), ""), "cp:8005").unwrap();
        assert!(
            unknown.message.ends_with("(certificate-status-unknown): its revocation status is unknown"),
            "{unknown}"
        );
        assert!(refused_at_upgrade(&answer(Some("something-else"), "x"), "cp:8005").is_none());
        assert!(refused_at_upgrade(&answer(None, "forbidden"), "cp:8005").is_none());
    }
}
