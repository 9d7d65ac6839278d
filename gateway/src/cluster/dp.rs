//! The data plane's end: dials its control plane, says what it is, applies every configuration it
//! receives (validated before it replaces the one served) and keeps it in its cache, pings with its
//! hash (at once after each configuration, as the control plane's cue for the next), and redials
//! after a random 5–10 s whenever the link fails, forever: 45 s with nothing from the control plane
//! fails it. A failure is logged once per attempt, naming the step that failed and why; a stop
//! closes the link with a WebSocket close.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use super::cache::ConfigCache;
use super::dial::{Dialer, Hop, HopError};
use super::protocol::{
    self, BasicInfo, CLOSE_DEADLINE, OUTLET_PATH, PING_INTERVAL, PluginInfo, REDIAL_SECONDS, SEND_DEADLINE,
    SILENCE_LIMIT,
};
use crate::entities::{PluginRegistry, config_hash, parse_value_with};
use crate::proxy::Proxy;
use crate::shutdown::Shutdown;

/// How long each step of connecting (resolve, TCP, TLS, CONNECT, WebSocket) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct DataPlane {
    /// The way to the control plane, directly or through the forward proxy.
    pub dialer: Dialer,
    pub node_id: Uuid,
    pub hostname: String,
    /// The plugins this node runs, with their versions, as `basic_info` reports them.
    pub plugins: Vec<PluginInfo>,
    /// What configurations from the control plane are checked against.
    pub registry: Arc<PluginRegistry>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub max_payload: usize,
    pub proxy: Arc<Proxy>,
    pub cache: Option<Arc<ConfigCache>>,
    /// Whether a link to the control plane is up now (`kong_control_plane_connected`).
    pub link_up: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a link attempt ended, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Hop(#[from] HopError),
    #[error("the link to the control plane {cp} failed: {cause}")]
    Link { cp: String, cause: String },
    #[error("the control plane {cp} was silent for {SILENCE_LIMIT:?} (nothing arrived from it)")]
    Silent { cp: String },
    #[error("the control plane {cp} closed the link")]
    Closed { cp: String },
}

impl DataPlane {
    /// Links to the control plane until `shutdown`, redialing after every failure.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            let outcome = self.session(&mut shutdown).await;
            self.link_up.store(false, std::sync::atomic::Ordering::Relaxed);
            if shutdown.fired() {
                return;
            }
            let delay = Duration::from_secs(rand_between(REDIAL_SECONDS));
            match outcome {
                Ok(()) => tracing::warn!(retry_in = ?delay, "the control plane link ended; redialing"),
                Err(error) => {
                    let proxy = self.dialer.proxy.as_ref().map_or_else(|| "none".into(), |p| p.server.to_string());
                    tracing::error!(control_plane = %self.dialer.control_plane, %proxy, %error, retry_in = ?delay, "cannot sync with the control plane; redialing")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// One link, from dialing to its end. On shutdown the link is closed with a WebSocket close,
    /// so the control plane sees a clean departure.
    async fn session(&self, shutdown: &mut Shutdown) -> Result<(), LinkError> {
        let cp = self.dialer.control_plane.to_string();
        let connect = async {
            let tls = self.dialer.dial(&mut |_, _| {}).await?;
            outlet(tls, &self.dialer.control_plane, self.node_id, &self.hostname, self.max_payload).await
        };
        let (mut ws, _) = tokio::select! {
            connected = connect => connected?,
            () = shutdown.wait() => return Ok(()),
        };
        let hello = BasicInfo { kind: "basic_info".into(), plugins: self.plugins.clone(), labels: self.labels.clone() };
        let hello = serde_json::to_vec(&hello).expect("basic_info serialises");
        send(&mut ws, Message::Binary(hello.into()), &cp).await?;
        tracing::info!(control_plane = %cp, node = %self.node_id, "connected to the control plane");
        self.link_up.store(true, std::sync::atomic::Ordering::Relaxed);

        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Only what arrives from the control plane counts: our own pings prove nothing about it.
        let silence = tokio::time::sleep(SILENCE_LIMIT);
        tokio::pin!(silence);
        loop {
            // In order, so that a frame already here wins over a silence timer that ran out while
            // this process was paused.
            tokio::select! {
                biased;
                () = shutdown.wait() => {
                    let _ = tokio::time::timeout(CLOSE_DEADLINE, close(&mut ws)).await;
                    tracing::info!(control_plane = %cp, "closed the link to the control plane");
                    return Ok(());
                }
                incoming = ws.next() => {
                    silence.as_mut().reset(tokio::time::Instant::now() + SILENCE_LIMIT);
                    match incoming {
                        None | Some(Ok(Message::Close(_))) => return Err(LinkError::Closed { cp }),
                        Some(Err(e)) => {
                            return Err(LinkError::Link { cp, cause: protocol::describe(&e, self.max_payload) });
                        }
                        Some(Ok(Message::Binary(frame))) => {
                            self.reconfigure(&frame).await;
                            // Report at once which configuration runs now, applied or not: the
                            // control plane sends the next one only after hearing from us.
                            self.ping(&mut ws, &cp).await?;
                            ping.reset();
                        }
                        Some(Ok(_)) => {}
                    }
                }
                _ = ping.tick() => self.ping(&mut ws, &cp).await?,
                () = &mut silence => return Err(LinkError::Silent { cp }),
            }
        }
    }

    /// A ping carrying the hash of the configuration served now.
    async fn ping(&self, ws: &mut Outlet, cp: &str) -> Result<(), LinkError> {
        let hash = self.proxy.current().hash.clone();
        send(ws, Message::Ping(hash.into_bytes().into()), cp).await
    }

    /// Applies one `reconfigure` frame; anything wrong with it is logged and the served
    /// configuration stays.
    async fn reconfigure(&self, frame: &[u8]) {
        let started = std::time::Instant::now();
        let message = match protocol::decode_reconfigure(frame, self.max_payload) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, "ignoring a configuration from the control plane");
                return;
            }
        };
        if message.config_hash == self.proxy.current().hash {
            return;
        }
        let config = match parse_value_with(&message.config_table, &self.registry) {
            Ok(config) => config,
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::error!(errors = %text.join("; "), "ignoring an invalid configuration from the control plane");
                return;
            }
        };
        let hash = config_hash(&config);
        if hash != message.config_hash {
            tracing::warn!(sent = %message.config_hash, computed = %hash, "the configuration's hash differs from the control plane's");
        }
        match self.proxy.apply(config).await {
            Ok(snapshot) => {
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(hash = %snapshot.hash, routes = snapshot.config.routes.len(), elapsed_ms, "configuration from the control plane applied");
                if let Some(cache) = self.cache.clone() {
                    let doc = message.config_table;
                    let hash = snapshot.hash.clone();
                    let saved = tokio::task::spawn_blocking(move || cache.save(&doc, &hash).map(|()| hash)).await;
                    match saved {
                        Ok(Ok(hash)) => tracing::info!(%hash, "configuration cached"),
                        Ok(Err(error)) => {
                            tracing::error!(%error, "cannot write the configuration cache; serving on regardless")
                        }
                        Err(_) => tracing::error!("writing the configuration cache was interrupted"),
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot apply the configuration from the control plane; serving the previous one");
            }
        }
    }
}

/// The closing handshake: our close, then frames until the control plane's close comes back, so it
/// never writes into a socket we already dropped (it would log a broken link, not a departure).
pub(crate) async fn close(ws: &mut Outlet) {
    let farewell = CloseFrame { code: CloseCode::Away, reason: "the data plane is stopping".into() };
    if ws.close(Some(farewell)).await.is_err() {
        return;
    }
    while let Some(Ok(frame)) = ws.next().await {
        if matches!(frame, Message::Close(_)) {
            break;
        }
    }
}

/// Sends `message`, failing the link if the control plane does not take it in time.
pub(crate) async fn send(ws: &mut Outlet, message: Message, cp: &str) -> Result<(), LinkError> {
    match tokio::time::timeout(SEND_DEADLINE, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(LinkError::Link { cp: cp.to_string(), cause: e.to_string() }),
        Err(_) => Err(LinkError::Link {
            cp: cp.to_string(),
            cause: format!("the control plane took nothing for {SEND_DEADLINE:?}"),
        }),
    }
}

/// A random whole number in `range`.
pub(crate) fn rand_between(range: std::ops::RangeInclusive<u64>) -> u64 {
    let span = range.end() - range.start() + 1;
    range.start() + (Uuid::new_v4().as_u128() % u128::from(span)) as u64
}

type ClusterStream = tokio_rustls::client::TlsStream<Box<dyn super::dial::Io>>;
pub(crate) type Outlet = tokio_tungstenite::WebSocketStream<ClusterStream>;

/// The WebSocket upgrade at `/v1/outlet` on an established mTLS stream.
pub async fn outlet(
    tls: ClusterStream,
    cp: &crate::conf::HostPort,
    node_id: Uuid,
    hostname: &str,
    max_payload: usize,
) -> Result<(Outlet, tokio_tungstenite::tungstenite::handshake::client::Response), HopError> {
    upgrade(tls, cp, Hop::Outlet, node_id, hostname, max_payload).await
}

/// The WebSocket upgrade of `hop` (`/v1/outlet` or `/v1/ingest`) on an established mTLS stream.
pub async fn upgrade(
    tls: ClusterStream,
    cp: &crate::conf::HostPort,
    hop: Hop,
    node_id: Uuid,
    hostname: &str,
    max_payload: usize,
) -> Result<(Outlet, tokio_tungstenite::tungstenite::handshake::client::Response), HopError> {
    let (path, hint) = match hop {
        Hop::Ingest => (
            protocol::INGEST_PATH,
            "the control plane's telemetry listener answers there; is cluster_telemetry_endpoint its cluster_telemetry_listen, and are its analytics on?",
        ),
        _ => (
            OUTLET_PATH,
            "the control plane's cluster listener answers there; is cluster_control_plane its cluster_listen?",
        ),
    };
    let url = format!(
        "wss://{cp}{path}?node_id={node_id}&node_hostname={}&node_version={}",
        percent_encoding::utf8_percent_encode(hostname, percent_encoding::NON_ALPHANUMERIC),
        crate::VERSION
    );
    let config = protocol::websocket_config(max_payload);
    let failed = |cause: String| HopError {
        hop,
        message: format!("WebSocket handshake with the control plane {cp} at {path}: {cause}"),
        hint,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::client_async_with_config(url, tls, Some(config)))
        .await
    {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Io(e))) => {
            Err(super::dial::refused_by_control_plane(&e, &cp.to_string()).unwrap_or_else(|| failed(e.to_string())))
        }
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            Err(super::dial::refused_at_upgrade(&response, &cp.to_string())
                .unwrap_or_else(|| failed(format!("the control plane answered HTTP {}", response.status()))))
        }
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!("timed out after {CONNECT_TIMEOUT:?}"))),
    }
}
