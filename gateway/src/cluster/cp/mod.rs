//! The control plane's end: accepts data planes on `cluster_listen` over mutual TLS, reads their
//! `basic_info`, pushes the whole configuration when they connect and after every change, records
//! their pings, and lists them for `/clustering/data-planes`.
//!
//! A link never queues: at most one configuration frame is on its way to a data plane, and the next
//! goes only once the data plane has pinged after taking it; meanwhile newer versions replace the
//! one waiting. So a stalled path holds one frame, not every change made while it stalled. A data
//! plane silent for 45 s, or one that does not take a frame within 45 s, is dropped.

pub mod dp_certificates;
mod payload;
mod registry;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::tls::CpTls;
use crate::io::AcceptBackoff;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use super::protocol::{
    self, BasicInfo, CLOSE_DEADLINE, INGEST_PATH, Ingest, IngestAnswer, OUTLET_PATH, SEND_DEADLINE, SILENCE_LIMIT,
    SyncStatus,
};
use crate::catalog::Catalog;
use crate::conf::{ClusterMtls, ClusterOcsp, Settings};
use crate::shutdown::Shutdown;
use crate::telemetry::store::{AnalyticsStore, Merged, Report, Sequence};
use crate::tls::ocsp::{self, Decision, Ocsp, OcspMode};
pub use payload::{Payload, Payloads};
pub use registry::{DataPlaneRow, Registry};

/// How long a new link may take to send its `basic_info`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may take over its TLS handshake, and then its WebSocket upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Link = WebSocketStream<tokio_rustls::server::TlsStream<TcpStream>>;
type LinkSink = SplitSink<Link, Message>;
/// A frame being written; gives the sink back when done.
type Sending = Pin<Box<dyn Future<Output = (LinkSink, Result<(), String>)> + Send>>;

/// Which listener a link came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `cluster_listen`: `/v1/outlet`, the configuration link.
    Cluster,
    /// `cluster_telemetry_listen`: `/v1/ingest`, analytics.
    Telemetry,
}

impl Door {
    fn name(self) -> &'static str {
        match self {
            Door::Cluster => "cluster",
            Door::Telemetry => "telemetry",
        }
    }
}

/// A link past its handshakes.
struct Upgraded {
    ws: Link,
    params: HashMap<String, String>,
    cert_details: serde_json::Value,
}

pub struct ControlPlane {
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    /// The cluster listener's TLS (and, in pki mode, the trusted data-plane certificates).
    pub tls: Arc<CpTls>,
    /// `cluster_max_payload`: the largest configuration, uncompressed, sent or accepted.
    pub max_payload: usize,
    pub payloads: Payloads,
    /// `cluster_ocsp` (pki mode): data plane certificates are checked with their OCSP responders.
    pub ocsp: Option<Arc<Ocsp>>,
    /// The control plane's plugins and their versions: a data plane must run the same major
    /// version of each plugin the configuration uses.
    pub plugins: HashMap<String, String>,
    /// Where the data planes' analytics go (`analytics = on`).
    pub analytics: std::sync::OnceLock<Arc<AnalyticsStore>>,
}

impl ControlPlane {
    pub fn new(
        catalog: Arc<Catalog>,
        registry: Arc<Registry>,
        tls: Arc<CpTls>,
        max_payload: usize,
        ocsp: Option<Arc<Ocsp>>,
        plugins: HashMap<String, String>,
    ) -> Arc<Self> {
        Arc::new(ControlPlane {
            catalog,
            registry,
            tls,
            max_payload,
            payloads: Payloads::new(max_payload),
            ocsp,
            plugins,
            analytics: std::sync::OnceLock::new(),
        })
    }

    /// Accepts data planes on `listener` until `shutdown`: configuration links on the cluster
    /// listener, analytics on the telemetry listener.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, door: Door, mut shutdown: Shutdown) {
        let mut backoff = AcceptBackoff::new(door.name());
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        backoff.accepted();
                        accepted
                    }
                    Err(error) => {
                        tokio::select! {
                            () = backoff.failed(&error) => {}
                            () = shutdown.wait() => return,
                        }
                        continue;
                    }
                },
                () = shutdown.wait() => return,
            };
            // A data plane's IPv4 address as itself, on an `ipv6only=off` listener too.
            let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
            let cp = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let outcome = match door {
                    Door::Cluster => cp.link(stream, peer, shutdown).await,
                    Door::Telemetry => cp.ingest(stream, peer, shutdown).await,
                };
                if let Err(error) = outcome {
                    tracing::warn!(peer = %peer, %error, "data plane {} link ended", door.name());
                }
            });
        }
    }

    /// The handshakes every link starts with: mutual TLS (with the pki checks and OCSP), then the
    /// WebSocket upgrade at `path`. None when the data plane was refused (logged, and told why).
    async fn upgrade(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        path: &'static str,
    ) -> Result<Option<Upgraded>, String> {
        // Frames are written whole; waiting for more to coalesce only delays them.
        let _ = stream.set_nodelay(true);
        // The verifier logs its refusals inside this span, so they name the data plane's address.
        let accept = self.tls.acceptor().accept(stream).instrument(tracing::error_span!("data_plane", peer = %peer));
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(tls)) => tls,
            Err(_) => return Err(format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")),
            Ok(Err(error)) => {
                // A verifier's refusal lands here (its detail is logged above): say who and why.
                let alert = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).and_then(|e| match e {
                    rustls::Error::AlertReceived(alert) => Some(*alert),
                    _ => None,
                });
                match alert {
                    Some(alert) => {
                        tracing::error!(peer = %peer, alert = ?alert, "a data plane refused this control plane's certificate (its log says why)")
                    }
                    None => tracing::error!(peer = %peer, %error, "refused a data plane at the TLS handshake"),
                }
                return Ok(None);
            }
        };
        let chain: Vec<_> = tls.get_ref().1.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
        let leaf = chain.first().and_then(crate::tls::pki::info);
        let expiry = leaf.as_ref().map(|c| c.not_after);
        let mut cert_details = json!({ "expiry_timestamp": expiry });
        if let Some(leaf) = &leaf {
            cert_details["subject"] = json!(leaf.subject);
            cert_details["serial"] = json!(leaf.serial);
        }
        if let Some(days) = chain.first().and_then(super::tls::expiring_in_days) {
            let certificate = leaf.as_ref().map(ToString::to_string).unwrap_or_default();
            tracing::warn!(peer = %peer, %certificate, days_left = days, "a data plane's cluster certificate expires within {} days", super::tls::EXPIRY_WARNING_DAYS);
            cert_details["expires_soon"] = json!(true);
            cert_details["days_left"] = json!(days);
        }
        // In pki mode the handshake verified the chain; again here for what the checks after it need.
        let verified = match self.tls.trust().map(|trust| trust.verify(&chain)) {
            None => None,
            Some(Ok(verified)) => Some(verified),
            Some(Err(error)) => {
                // The trusted set changed between the handshake and now.
                let (serial, subject) = error.cert().map_or(("?", "?"), |c| (c.serial.as_str(), c.subject.as_str()));
                tracing::error!(peer = %peer, serial, subject, reason = %error.reason(), "refusing a data plane certificate");
                return Ok(None);
            }
        };
        let refused = match (&self.ocsp, &verified, chain.first()) {
            (Some(ocsp), Some(verified), Some(leaf)) => revocation(ocsp, leaf, verified, peer).await,
            _ => None,
        };
        let mut query = None;
        // The handshake library fixes this callback's signature, large error type included.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            if let Some((refusal, why)) = &refused {
                // Said at the upgrade, in a header the data plane maps to its certificate hop.
                let body = format!("{why}\n");
                let mut answer = ErrorResponse::new(Some(body.clone()));
                *answer.status_mut() = hyper::StatusCode::FORBIDDEN;
                let headers = answer.headers_mut();
                headers.insert(protocol::REFUSAL_HEADER, hyper::header::HeaderValue::from_static(refusal.as_str()));
                headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
                headers.insert(hyper::header::CONTENT_LENGTH, body.len().into());
                headers.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
                return Err(answer);
            }
            if req.uri().path() != path {
                let mut refusal = ErrorResponse::new(Some("not found".into()));
                *refusal.status_mut() = hyper::StatusCode::NOT_FOUND;
                return Err(refusal);
            }
            query = Some(req.uri().query().unwrap_or("").to_string());
            Ok(resp)
        };
        let config = protocol::websocket_config(self.max_payload);
        let upgraded = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            tokio_tungstenite::accept_hdr_async_with_config(tls, callback, Some(config)),
        )
        .await
        .map_err(|_| format!("no WebSocket handshake within {HANDSHAKE_TIMEOUT:?}"))?;
        if refused.is_some() {
            // Logged with its reason above; the data plane got its 403.
            return Ok(None);
        }
        let ws = upgraded.map_err(|e| format!("WebSocket handshake: {e}"))?;
        let params: HashMap<String, String> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        Ok(Some(Upgraded { ws, params, cert_details }))
    }

    async fn link(&self, stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) -> Result<(), String> {
        let Some(Upgraded { mut ws, params, cert_details }) = self.upgrade(stream, peer, OUTLET_PATH).await? else {
            return Ok(());
        };
        let id = params
            .get("node_id")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| "the data plane sent no valid node_id".to_string())?;
        let hostname = params.get("node_hostname").cloned().unwrap_or_default();
        let version = params.get("node_version").cloned().unwrap_or_default();

        let hello = match tokio::time::timeout(HELLO_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => serde_json::from_slice::<BasicInfo>(&bytes)
                .map_err(|e| format!("node {id}: basic_info is not valid: {e}"))?,
            Ok(None | Some(Ok(Message::Close(_)))) => {
                // `gateway cluster check` proves the path this far and leaves.
                tracing::info!(node = %id, %hostname, "a data plane link closed before basic_info (a `cluster check`?)");
                return Ok(());
            }
            Ok(other) => return Err(format!("node {id}: expected basic_info first, got {other:?}")),
            Err(_) => return Err(format!("node {id}: no basic_info within {HELLO_TIMEOUT:?}")),
        };
        self.registry.insert(DataPlaneRow {
            id,
            ip: peer.ip().to_string(),
            hostname: hostname.clone(),
            version: version.clone(),
            sync_status: SyncStatus::Unknown,
            config_hash: String::new(),
            last_seen: registry::now(),
            labels: hello.labels.clone(),
            cert_details,
            connected: true,
        });
        tracing::info!(node = %id, %hostname, %version, ip = %peer.ip(), "data plane connected");

        let session = Session {
            id,
            version_ok: same_release_line(&version, crate::VERSION),
            version,
            offered: hello.plugins.iter().map(|p| (p.name.clone(), p.version.clone())).collect(),
        };
        let outcome = self.converse(&session, ws, shutdown).await;
        self.registry.update(id, |r| {
            r.connected = false;
            r.last_seen = registry::now();
        });
        if let Ok(how) = &outcome {
            tracing::info!(node = %id, how = %how, "data plane disconnected");
        }
        outcome.map(|_| ())
    }

    /// A telemetry link: each batch is checked, merged into the analytics store (once per session
    /// and sequence number) and acknowledged, one at a time, until one side ends the link.
    async fn ingest(&self, stream: TcpStream, peer: SocketAddr, mut shutdown: Shutdown) -> Result<(), String> {
        let Some(store) = self.analytics.get().cloned() else {
            return Err("analytics are off on this control plane".into());
        };
        let Some(Upgraded { mut ws, params, .. }) = self.upgrade(stream, peer, INGEST_PATH).await? else {
            return Ok(());
        };
        let node = params
            .get("node_id")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| "the data plane sent no valid node_id".to_string())?;
        let hostname = params.get("node_hostname").cloned().unwrap_or_default();
        tracing::info!(node = %node, %hostname, ip = %peer.ip(), "data plane telemetry connected");
        let silence = tokio::time::sleep(SILENCE_LIMIT);
        tokio::pin!(silence);
        loop {
            tokio::select! {
                biased;
                () = shutdown.wait() => {
                    let farewell = CloseFrame { code: CloseCode::Away, reason: "the control plane is stopping".into() };
                    let _ = tokio::time::timeout(CLOSE_DEADLINE, ws.close(Some(farewell))).await;
                    return Ok(());
                }
                incoming = ws.next() => {
                    silence.as_mut().reset(tokio::time::Instant::now() + SILENCE_LIMIT);
                    let frame = match incoming {
                        None | Some(Ok(Message::Close(_))) => {
                            tracing::info!(node = %node, "data plane telemetry disconnected");
                            return Ok(());
                        }
                        Some(Err(e)) => return Err(format!("node {node}: {}", protocol::describe(&e, self.max_payload))),
                        Some(Ok(Message::Binary(frame))) => frame,
                        Some(Ok(_)) => continue,
                    };
                    let answer = self.take_batch(&store, node, &hostname, &frame).await?;
                    let bytes = serde_json::to_vec(&answer).expect("answers serialise");
                    match tokio::time::timeout(SEND_DEADLINE, ws.send(Message::Binary(bytes.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(format!("node {node}: acknowledging a batch: {e}")),
                        Err(_) => return Err(format!("node {node}: took no acknowledgement for {SEND_DEADLINE:?}")),
                    }
                }
                () = &mut silence => return Err(format!("node {node}: telemetry silent for {SILENCE_LIMIT:?}")),
            }
        }
    }

    /// Checks and stores one batch; the answer says whether the data plane may forget it. An error
    /// is the store failing: the link ends and the data plane sends the batch again later.
    async fn take_batch(
        &self,
        store: &Arc<AnalyticsStore>,
        node: Uuid,
        hostname: &str,
        frame: &[u8],
    ) -> Result<IngestAnswer, String> {
        let Ingest::Analytics { session, seq, dropped, aggregates } = match serde_json::from_slice::<Ingest>(frame) {
            Ok(batch) => batch,
            Err(e) => return Err(format!("node {node}: not a telemetry batch: {e}")),
        };
        if let Some((i, error)) = aggregates.iter().enumerate().find_map(|(i, a)| a.check().err().map(|e| (i, e))) {
            let message = format!("aggregates[{i}]: {error}");
            tracing::error!(node = %node, seq, %message, "refusing a telemetry batch");
            return Ok(IngestAnswer::Refused { seq, message });
        }
        let services = self.catalog.current().config.services.len() as u64;
        let (store, hostname) = (store.clone(), hostname.to_string());
        let merged = tokio::task::spawn_blocking(move || {
            let report = Report {
                node,
                sequence: Some(Sequence { session, seq }),
                hostname: &hostname,
                aggregates: &aggregates,
                dropped,
                services,
            };
            store.merge(&report, crate::telemetry::now_minute())
        })
        .await
        .map_err(|_| format!("node {node}: storing a batch was interrupted"))?
        .map_err(|e| format!("node {node}: storing a batch: {e}"))?;
        if merged == Merged::Duplicate {
            tracing::info!(node = %node, seq, "a telemetry batch came again (its acknowledgement was lost): not counted twice");
        }
        Ok(IngestAnswer::Ack { seq })
    }

    /// The link after `basic_info`: pushes, pings, silence, until one side ends it. Returns how a
    /// clean end came about; an error is a link that failed.
    async fn converse(&self, session: &Session, ws: Link, mut shutdown: Shutdown) -> Result<String, String> {
        let id = session.id;
        let (sink, mut incoming) = ws.split();
        let mut sink = Some(sink);
        let mut sending: Option<(Sending, Arc<Payload>)> = None;
        // The newest version this data plane should get, once the link is free for it.
        let mut waiting: Option<Arc<Payload>> = None;
        // A frame was written and the data plane has not pinged since.
        let mut unconfirmed = false;
        // The hash last handed to the writer, and the control plane's current one.
        let mut queued = String::new();
        let mut wanted = String::new();
        let mut reported = String::new();
        let mut blocked: Option<SyncStatus> = None;
        let mut too_large = false;
        let silence = tokio::time::sleep(SILENCE_LIMIT);
        tokio::pin!(silence);
        let mut changes = self.catalog.subscribe();
        changes.mark_changed();

        loop {
            if sending.is_none()
                && !unconfirmed
                && let Some(payload) = waiting.take()
                && let Ok(frame) = payload.frame.as_ref().map(Clone::clone)
                && let Some(mut writer) = sink.take()
            {
                queued = payload.hash.clone();
                let write: Sending = Box::pin(async move {
                    let result = match tokio::time::timeout(SEND_DEADLINE, writer.send(Message::Binary(frame))).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("the data plane did not take it within {SEND_DEADLINE:?}")),
                    };
                    (writer, result)
                });
                sending = Some((write, payload));
            }
            let status = blocked.unwrap_or(if !too_large && !wanted.is_empty() && reported == wanted {
                SyncStatus::Normal
            } else {
                SyncStatus::OutOfSync
            });
            self.registry.update(id, |r| r.sync_status = status);

            // In order: a frame that is waiting wins over the silence timer, which may have run
            // out while this process was paused rather than while the peer was silent.
            tokio::select! {
                biased;
                () = shutdown.wait() => {
                    // A frame still being written keeps the sink: no close then, the peer sees the end.
                    if let Some(mut writer) = sink.take() {
                        let farewell = CloseFrame { code: CloseCode::Away, reason: "the control plane is stopping".into() };
                        let _ = tokio::time::timeout(CLOSE_DEADLINE, writer.send(Message::Close(Some(farewell)))).await;
                    }
                    return Ok("the control plane is stopping".into());
                }
                frame = incoming.next() => {
                    silence.as_mut().reset(tokio::time::Instant::now() + SILENCE_LIMIT);
                    match frame {
                        None => return Ok("the connection ended".into()),
                        Some(Err(e)) => return Err(format!("node {id}: {}", protocol::describe(&e, self.max_payload))),
                        Some(Ok(Message::Ping(payload))) => {
                            // Taken after our last frame was written: the data plane has it.
                            unconfirmed = false;
                            let hash = String::from_utf8_lossy(&payload).into_owned();
                            if hash.len() == 32 {
                                reported.clone_from(&hash);
                            }
                            self.registry.update(id, |r| {
                                r.last_seen = registry::now();
                                if hash.len() == 32 {
                                    r.config_hash = hash;
                                }
                            });
                        }
                        Some(Ok(Message::Close(farewell))) => {
                            let why = farewell.map(|f| format!("{} ({})", f.reason, u16::from(f.code))).unwrap_or_default();
                            tracing::info!(node = %id, reason = %why, "the data plane closed the link");
                            if let Some(mut writer) = sink.take() {
                                let _ = tokio::time::timeout(CLOSE_DEADLINE, writer.close()).await;
                            }
                            return Ok("the data plane closed the link".into());
                        }
                        Some(Ok(_)) => self.registry.update(id, |r| r.last_seen = registry::now()),
                    }
                }
                written = async {
                    match sending.as_mut() {
                        Some((write, _)) => write.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if sending.is_some() => {
                    let (writer, result) = written;
                    let Some((_, payload)) = sending.take() else { continue };
                    sink = Some(writer);
                    match result {
                        Ok(()) => {
                            unconfirmed = true;
                            let bytes = payload.frame.as_ref().map_or(0, bytes::Bytes::len);
                            tracing::info!(node = %id, hash = %payload.hash, bytes, "configuration sent");
                        }
                        Err(e) => {
                            return Err(format!("node {id}: sending the configuration {}: {e}; dropping the link", payload.hash));
                        }
                    }
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok("the catalog closed".into());
                    }
                    let state = self.catalog.current();
                    if !session.version_ok {
                        blocked = Some(SyncStatus::KongVersionIncompatible);
                        tracing::warn!(node = %id, dp_version = %session.version, cp_version = crate::VERSION, "not sending the configuration: the data plane runs another release line");
                        continue;
                    }
                    let payload = self.payloads.get(&state).await;
                    wanted.clone_from(&payload.hash);
                    match plugin_compatibility(&payload.plugins, &self.plugins, &session.offered) {
                        Ok(()) => {}
                        Err((status, plugins)) => {
                            blocked = Some(status);
                            waiting = None;
                            tracing::warn!(node = %id, ?status, plugins = ?plugins, "not sending the configuration: the data plane lacks plugins it uses, or runs another major version of them");
                            continue;
                        }
                    }
                    blocked = None;
                    too_large = payload.frame.is_err();
                    if let Err(error) = &payload.frame {
                        waiting = None;
                        tracing::error!(node = %id, hash = %payload.hash, %error, "not sending the configuration to this data plane");
                    } else if payload.hash != queued {
                        waiting = Some(payload);
                    } else {
                        waiting = None;
                    }
                }
                () = &mut silence => {
                    return Err(format!("node {id}: nothing arrived from the data plane for {SILENCE_LIMIT:?}; dropping the link"));
                }
            }
        }
    }
}

/// What a link learned from the data plane's handshake and `basic_info`.
struct Session {
    id: Uuid,
    version: String,
    version_ok: bool,
    /// The data plane's plugins and their versions.
    offered: HashMap<String, String>,
}

/// A version's major number (`1` of `1.4.2`), as plugins' compatibility is judged.
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// Whether a data plane offering `offered` (name to version) can run a configuration using `used`:
/// each must be offered (else `plugin_set_incompatible`), in the control plane's major version
/// (`ours`; else `plugin_version_incompatible`). `Err` names the plugins at fault.
fn plugin_compatibility(
    used: &[String],
    ours: &HashMap<String, String>,
    offered: &HashMap<String, String>,
) -> Result<(), (SyncStatus, Vec<String>)> {
    let missing: Vec<String> = used.iter().filter(|p| !offered.contains_key(*p)).cloned().collect();
    if !missing.is_empty() {
        return Err((SyncStatus::PluginSetIncompatible, missing));
    }
    let mismatched: Vec<String> = used
        .iter()
        .filter_map(|name| {
            let (ours, theirs) = (ours.get(name)?, offered.get(name)?);
            (major(ours) != major(theirs)).then(|| format!("{name} {theirs} (control plane: {ours})"))
        })
        .collect();
    if mismatched.is_empty() { Ok(()) } else { Err((SyncStatus::PluginVersionIncompatible, mismatched)) }
}

/// Whether two versions share major and minor (`0.1.x` with `0.1.y`), as Kong requires of a DP.
/// The checker `cluster_ocsp` asks for: only in pki mode (conf refuses it with shared mode). Its
/// `https://` responders are verified against `lua_ssl_trusted_certificate`.
pub fn ocsp_checker(settings: &Settings) -> Result<Option<Arc<Ocsp>>, crate::tls::trust::TrustError> {
    let mode = match settings.cluster_ocsp {
        ClusterOcsp::Off => return Ok(None),
        ClusterOcsp::On => OcspMode::On,
        ClusterOcsp::Optional => OcspMode::Optional,
    };
    if settings.cluster_mtls != ClusterMtls::Pki {
        return Ok(None);
    }
    let https = crate::tls::trust::http1_client(&settings.lua_ssl_trusted_certificate, None)?;
    Ok(Some(Arc::new(Ocsp::new(mode, Some(https)))))
}

/// The OCSP check of a verified data plane certificate: None to let it in (warning when its status
/// is unknown and `cluster_ocsp = optional`), else why it is refused, logged here.
async fn revocation(
    ocsp: &Ocsp,
    leaf: &rustls::pki_types::CertificateDer<'_>,
    verified: &crate::tls::pki::Verified,
    peer: SocketAddr,
) -> Option<(protocol::Refusal, String)> {
    let cert = &verified.leaf;
    match ocsp.check(leaf, verified.issuer.as_ref()).await {
        Decision::Allow => None,
        Decision::AllowUnchecked(error) => {
            tracing::warn!(peer = %peer, serial = %cert.serial, subject = %cert.subject, reason = %error, "accepting a data plane certificate whose revocation status is unknown (cluster_ocsp = optional)");
            None
        }
        Decision::Refuse(refusal) => {
            tracing::error!(peer = %peer, serial = %cert.serial, subject = %cert.subject, reason = %refusal, "refusing a data plane certificate");
            let kind = match refusal {
                ocsp::Refusal::Revoked(_) => protocol::Refusal::CertificateRevoked,
                ocsp::Refusal::Unchecked(_) => protocol::Refusal::CertificateStatusUnknown,
            };
            Some((kind, refusal.to_string()))
        }
    }
}

fn same_release_line(a: &str, b: &str) -> bool {
    let line = |v: &str| v.split('.').take(2).map(str::to_string).collect::<Vec<_>>();
    line(a) == line(b) && line(a).len() == 2
}

/// The plugin names a configuration uses.
pub fn configured_plugins(config: &crate::entities::Config) -> Vec<String> {
    let mut names: Vec<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn release_lines() {
        assert!(super::same_release_line("0.1.0", "0.1.7"));
        assert!(!super::same_release_line("0.2.0", "0.1.0"));
        assert!(!super::same_release_line("", "0.1.0"));
    }

    #[test]
    fn a_data_plane_needs_every_plugin_used_in_the_control_planes_major_version() {
        use super::{SyncStatus, plugin_compatibility};
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let ours = map(&[("a", "1.2.0"), ("b", "2.0.0")]);
        let used = vec!["a".to_string()];
        assert_eq!(plugin_compatibility(&used, &ours, &map(&[("a", "1.0.3")])), Ok(()), "an older minor is fine");
        assert_eq!(
            plugin_compatibility(&used, &ours, &map(&[("b", "2.0.0")])),
            Err((SyncStatus::PluginSetIncompatible, vec!["a".to_string()]))
        );
        let older = plugin_compatibility(&used, &ours, &map(&[("a", "0.9.0")]));
        assert!(matches!(older, Err((SyncStatus::PluginVersionIncompatible, _))), "{older:?}");
        assert_eq!(plugin_compatibility(&[], &ours, &map(&[])), Ok(()), "no plugin used, nothing needed");
    }
}
