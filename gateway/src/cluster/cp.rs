//! The control plane's end: accepts data planes on `cluster_listen` over mutual TLS, reads their
//! `basic_info`, pushes the whole configuration when they connect and after every change (the
//! newest only: a burst of changes is one push), records their pings, and lists them for
//! `/clustering/data-planes`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

use super::protocol::{self, BasicInfo, OUTLET_PATH, Reconfigure, SILENCE_LIMIT, SyncStatus};
use crate::catalog::Catalog;
use crate::entities::to_declarative;
use crate::shutdown::Shutdown;

/// How long a new link may take to send its `basic_info`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// One data plane as `/clustering/data-planes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DataPlaneRow {
    pub id: Uuid,
    pub ip: String,
    pub hostname: String,
    pub version: String,
    pub sync_status: SyncStatus,
    pub config_hash: String,
    pub last_seen: i64,
    pub labels: BTreeMap<String, String>,
    pub cert_details: Value,
    /// Whether a link to it is open now.
    #[serde(skip)]
    pub connected: bool,
}

/// Every data plane seen within `cluster_data_plane_purge_delay`.
pub struct Registry {
    rows: Mutex<HashMap<Uuid, DataPlaneRow>>,
    purge_delay: Duration,
}

impl Registry {
    pub fn new(purge_delay: Duration) -> Arc<Registry> {
        Arc::new(Registry { rows: Mutex::new(HashMap::new()), purge_delay })
    }

    fn update(&self, id: Uuid, change: impl FnOnce(&mut DataPlaneRow)) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(row) = rows.get_mut(&id) {
            change(row);
        }
    }

    /// Rows by id, dropping those not seen within the purge delay.
    pub fn rows(&self) -> Vec<DataPlaneRow> {
        let oldest = now() - self.purge_delay.as_secs() as i64;
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.retain(|_, row| row.connected || row.last_seen >= oldest);
        let mut out: Vec<DataPlaneRow> = rows.values().cloned().collect();
        out.sort_by_key(|r| r.id);
        out
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub struct ControlPlane {
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub tls: TlsAcceptor,
    pub max_payload: usize,
}

impl ControlPlane {
    /// Accepts data planes on `listener` until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut shutdown: Shutdown) {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a cluster connection failed");
                        continue;
                    }
                },
                () = shutdown.wait() => return,
            };
            let cp = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(error) = cp.link(stream, peer, shutdown).await {
                    tracing::warn!(peer = %peer, %error, "data plane link ended");
                }
            });
        }
    }

    async fn link(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        mut shutdown: Shutdown,
    ) -> Result<(), String> {
        // Frames are written whole; waiting for more to coalesce only delays them.
        let _ = stream.set_nodelay(true);
        let tls = match self.tls.accept(stream).await {
            Ok(tls) => tls,
            Err(error) => {
                // The pinning verifier's refusal lands here: say who and why.
                tracing::error!(peer = %peer, %error, "refused a data plane at the TLS handshake");
                return Ok(());
            }
        };
        let expiry = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|der| {
            x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c.validity().not_after.timestamp())
        });
        let mut query = None;
        // The handshake library fixes this callback's signature, large error type included.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            if req.uri().path() != OUTLET_PATH {
                let mut refusal = ErrorResponse::new(Some("not found".into()));
                *refusal.status_mut() = hyper::StatusCode::NOT_FOUND;
                return Err(refusal);
            }
            query = Some(req.uri().query().unwrap_or("").to_string());
            Ok(resp)
        };
        let config =
            WebSocketConfig::default().max_message_size(Some(self.max_payload)).max_frame_size(Some(self.max_payload));
        let mut ws = tokio_tungstenite::accept_hdr_async_with_config(tls, callback, Some(config))
            .await
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        let params: HashMap<String, String> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
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
        let offered: Vec<String> = hello.plugins.iter().map(|p| p.name.clone()).collect();
        let version_ok = same_release_line(&version, crate::VERSION);
        let row = DataPlaneRow {
            id,
            ip: peer.ip().to_string(),
            hostname: hostname.clone(),
            version: version.clone(),
            sync_status: SyncStatus::Unknown,
            config_hash: String::new(),
            last_seen: now(),
            labels: hello.labels.clone(),
            cert_details: json!({ "expiry_timestamp": expiry }),
            connected: true,
        };
        self.registry.rows.lock().unwrap_or_else(|p| p.into_inner()).insert(id, row);
        tracing::info!(node = %id, %hostname, %version, ip = %peer.ip(), "data plane connected");

        let mut changes = self.catalog.subscribe();
        changes.mark_changed();
        let mut sent_hash = String::new();
        let outcome = loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                    let state = self.catalog.current();
                    if !version_ok {
                        self.registry.update(id, |r| r.sync_status = SyncStatus::KongVersionIncompatible);
                        tracing::warn!(node = %id, dp_version = %version, cp_version = crate::VERSION, "not sending the configuration: the data plane runs another release line");
                        continue;
                    }
                    let missing: Vec<String> = configured_plugins(&state.config)
                        .into_iter()
                        .filter(|p| !offered.contains(p))
                        .collect();
                    if !missing.is_empty() {
                        self.registry.update(id, |r| r.sync_status = SyncStatus::PluginSetIncompatible);
                        tracing::warn!(node = %id, missing = ?missing, "not sending the configuration: the data plane lacks plugins it uses");
                        continue;
                    }
                    self.registry.update(id, |r| r.sync_status = SyncStatus::Normal);
                    if state.hash == sent_hash {
                        continue;
                    }
                    let message = Reconfigure {
                        kind: "reconfigure".into(),
                        config_table: to_declarative(&state.config),
                        config_hash: state.hash.clone(),
                        timestamp: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
                    };
                    match protocol::encode_reconfigure(&message, self.max_payload) {
                        Ok(frame) => {
                            let bytes = frame.len();
                            if let Err(e) = ws.send(Message::Binary(frame.into())).await {
                                break Err(format!("node {id}: sending the configuration: {e}"));
                            }
                            sent_hash = state.hash.clone();
                            tracing::info!(node = %id, hash = %state.hash, bytes, "configuration sent");
                        }
                        Err(e) => tracing::error!(node = %id, error = %e, "cannot send the configuration"),
                    }
                }
                incoming = tokio::time::timeout(SILENCE_LIMIT, ws.next()) => match incoming {
                    Err(_) => break Err(format!("node {id}: silent for {SILENCE_LIMIT:?}; dropping the link")),
                    Ok(None) => break Ok(()),
                    Ok(Some(Err(e))) => break Err(format!("node {id}: {}", protocol::describe(&e, self.max_payload))),
                    Ok(Some(Ok(Message::Ping(payload)))) => {
                        let hash = String::from_utf8_lossy(&payload).to_string();
                        self.registry.update(id, |r| {
                            r.last_seen = now();
                            if hash.len() == 32 {
                                r.config_hash = hash;
                            }
                        });
                    }
                    Ok(Some(Ok(Message::Close(_)))) => break Ok(()),
                    Ok(Some(Ok(_))) => self.registry.update(id, |r| r.last_seen = now()),
                },
                () = shutdown.wait() => {
                    let _ = ws.close(None).await;
                    break Ok(());
                }
            }
        };
        self.registry.update(id, |r| {
            r.connected = false;
            r.last_seen = now();
        });
        tracing::info!(node = %id, "data plane disconnected");
        outcome
    }
}

/// Whether two versions share major and minor (`0.1.x` with `0.1.y`), as Kong requires of a DP.
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
}
