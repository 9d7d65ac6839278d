//! The wire of the CP ↔ DP link, in the shape of Kong's v1 protocol: a WebSocket at `/v1/outlet`; the
//! DP's first frame is `basic_info` (binary JSON); the CP sends `reconfigure` frames (binary, gzip
//! JSON) with the whole configuration and its hash; the DP pings every 30 s with its hash as the
//! payload and the CP answers pong; either side drops a link on which nothing arrived for 45 s.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The path data planes dial.
pub const OUTLET_PATH: &str = "/v1/outlet";
/// Where a data plane sends its analytics, on the control plane's `cluster_telemetry_listen`.
pub const INGEST_PATH: &str = "/v1/ingest";
/// A telemetry link redials sooner than the configuration link: its buffer is filling meanwhile.
pub const TELEMETRY_REDIAL_SECONDS: std::ops::RangeInclusive<u64> = 1..=5;
/// How long a data plane waits for a batch's acknowledgement before it takes the link for broken
/// (and sends the batch again on the next one).
pub const ACK_DEADLINE: Duration = Duration::from_secs(15);
/// How often a data plane pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A link on which nothing arrived from the peer for this long is dropped by either side (what a
/// side sends itself never counts).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// A frame the peer does not take within this long (it stopped reading, or the path stalled)
/// drops the link rather than queueing behind it.
pub const SEND_DEADLINE: Duration = SILENCE_LIMIT;
/// How long a side that is stopping waits for its WebSocket close to go out.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(2);
/// A data plane redials after a random delay in this range (whole seconds).
pub const REDIAL_SECONDS: std::ops::RangeInclusive<u64> = 5..=10;

/// The header of the control plane's 403 answer to a WebSocket upgrade it refuses after the TLS
/// handshake (an OCSP check), naming why in a word the data plane maps to its hop.
pub const REFUSAL_HEADER: &str = "x-gateway-cluster-refusal";

/// Why the control plane refused a data plane's link after the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its OCSP responder says the certificate is revoked.
    CertificateRevoked,
    /// `cluster_ocsp = on` and the certificate's status could not be learned.
    CertificateStatusUnknown,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::CertificateRevoked => "certificate-revoked",
            Refusal::CertificateStatusUnknown => "certificate-status-unknown",
        }
    }

    pub fn parse(value: &str) -> Option<Refusal> {
        [Refusal::CertificateRevoked, Refusal::CertificateStatusUnknown].into_iter().find(|r| r.as_str() == value)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
}

/// The data plane's first frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BasicInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub plugins: Vec<PluginInfo>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The control plane's frame: everything, and its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconfigure {
    #[serde(rename = "type")]
    pub kind: String,
    /// The declarative document (`_format_version: "3.0"`).
    pub config_table: Value,
    pub config_hash: String,
    /// Seconds since the epoch when the control plane sent it.
    pub timestamp: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the configuration is {size} bytes uncompressed, more than cluster_max_payload ({limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("the frame is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("the frame is not the JSON expected: {0}")]
    Json(serde_json::Error),
}

/// A `reconfigure` frame, gzip-compressed; refused if its JSON is larger than `limit`
/// (`cluster_max_payload` bounds the uncompressed size on both ends, so whatever the control plane
/// sends, the data plane accepts).
pub fn encode_reconfigure(message: &Reconfigure, limit: usize) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(message).map_err(FrameError::Json)?;
    if json.len() > limit {
        return Err(FrameError::TooLarge { size: json.len(), limit });
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&json).map_err(FrameError::Gzip)?;
    encoder.finish().map_err(FrameError::Gzip)
}

/// The largest WebSocket frame either end accepts for a `cluster_max_payload` of `max_payload`:
/// the payload itself plus gzip's worst case on incompressible data (header, trailer and 5 bytes
/// per stored block), so the limit that matters stays the uncompressed one.
pub fn frame_limit(max_payload: usize) -> usize {
    max_payload.saturating_add(max_payload / 1024).saturating_add(1024)
}

/// Reads a `reconfigure` frame; inflating stops at `limit` bytes.
pub fn decode_reconfigure(bytes: &[u8], limit: usize) -> Result<Reconfigure, FrameError> {
    let mut json = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(limit as u64 + 1);
    decoder.read_to_end(&mut json).map_err(FrameError::Gzip)?;
    if json.len() > limit {
        return Err(FrameError::TooLarge { size: json.len(), limit });
    }
    serde_json::from_slice(&json).map_err(FrameError::Json)
}

/// The WebSocket limits of both ends for a `cluster_max_payload` of `max_payload`.
pub fn websocket_config(max_payload: usize) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    let limit = frame_limit(max_payload);
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// A WebSocket error in words; a frame over the size limit names `cluster_max_payload`.
pub fn describe(error: &tokio_tungstenite::tungstenite::Error, limit: usize) -> String {
    match error {
        tokio_tungstenite::tungstenite::Error::Capacity(cause) => {
            format!("the peer sent a frame larger than cluster_max_payload allows ({limit} bytes): {cause}")
        }
        other => other.to_string(),
    }
}

/// Data plane → control plane on the telemetry link: one batch of analytics (a binary frame of
/// JSON). A batch is kept until acknowledged and sent again, with the same `session` and `seq`,
/// on the next link; the control plane merges each (session, seq) once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Ingest {
    Analytics {
        /// This data plane process's run: a new one at every start.
        session: uuid::Uuid,
        /// From 1, one more per batch of the session.
        seq: u64,
        /// Records the data plane dropped since its previous batch (its buffer was full).
        dropped: u64,
        aggregates: Vec<crate::telemetry::Aggregate>,
    },
}

/// Control plane → data plane on the telemetry link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IngestAnswer {
    /// The batch is stored (or was before): the data plane may forget it.
    Ack { seq: u64 },
    /// The batch cannot be stored, ever (it does not add up): the data plane drops it and counts
    /// its records as dropped.
    Refused { seq: u64, message: String },
}

/// Kong's `sync_status` values, and `out_of_sync` (ours): the data plane is compatible but has not
/// confirmed the control plane's current configuration (a push is in flight or stalled, or the
/// configuration is over `cluster_max_payload`). Kong says `normal` then, hiding a stale node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Unknown,
    Normal,
    OutOfSync,
    PluginSetIncompatible,
    PluginVersionIncompatible,
    KongVersionIncompatible,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconfigure_frames_round_trip_and_respect_the_limit() {
        let message = Reconfigure {
            kind: "reconfigure".into(),
            config_table: serde_json::json!({"_format_version": "3.0", "services": [{"host": "a.test"}]}),
            config_hash: "0".repeat(32),
            timestamp: 1.5,
        };
        let bytes = encode_reconfigure(&message, 1 << 20).unwrap();
        assert_eq!(decode_reconfigure(&bytes, 1 << 20).unwrap(), message);
        let error = encode_reconfigure(&message, 10).unwrap_err();
        assert!(error.to_string().contains("uncompressed, more than cluster_max_payload"), "{error}");
        let error = decode_reconfigure(&bytes, 20).unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }), "{error}");
        assert_eq!(serde_json::to_value(SyncStatus::PluginSetIncompatible).unwrap(), "plugin_set_incompatible");
        assert_eq!(serde_json::to_value(SyncStatus::OutOfSync).unwrap(), "out_of_sync");
    }

    /// One limit, both ends: a configuration the control plane agrees to send (JSON at most
    /// `limit`) is a frame the data plane accepts and inflates, even when it does not compress;
    /// one byte more is refused before it is sent.
    #[test]
    fn the_limit_is_the_uncompressed_size_on_both_ends() {
        // Random-looking text that gzip cannot shrink.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: String = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        let message = Reconfigure {
            kind: "reconfigure".into(),
            config_table: serde_json::json!({ "_format_version": "3.0", "noise": noise }),
            config_hash: "0".repeat(32),
            timestamp: 1.0,
        };
        let size = serde_json::to_vec(&message).unwrap().len();
        let frame = encode_reconfigure(&message, size).unwrap();
        assert!(frame.len() > size * 8 / 10, "the fixture compressed: {} of {size}", frame.len());
        assert!(frame.len() <= frame_limit(size), "{} > {}", frame.len(), frame_limit(size));
        assert_eq!(decode_reconfigure(&frame, size).unwrap(), message);
        assert!(matches!(encode_reconfigure(&message, size - 1), Err(FrameError::TooLarge { .. })));
    }
}
