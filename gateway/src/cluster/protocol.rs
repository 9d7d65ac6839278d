//! The wire of the CP ↔ DP link, in the shape of Kong's v1 protocol: a WebSocket at `/v1/outlet`; the
//! DP's first frame is `basic_info` (binary JSON); the CP sends `reconfigure` frames (binary, gzip
//! JSON) with the whole configuration and its hash; the DP pings every 30 s with its hash as the
//! payload; either side drops a link that was silent for 45 s.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The path data planes dial.
pub const OUTLET_PATH: &str = "/v1/outlet";
/// How often a data plane pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A link silent for this long is dropped by either side.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// A data plane redials after a random delay in this range (whole seconds).
pub const REDIAL_SECONDS: std::ops::RangeInclusive<u64> = 5..=10;

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
    #[error("the frame is {size} bytes, more than cluster_max_payload ({limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("the frame is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("the frame is not the JSON expected: {0}")]
    Json(serde_json::Error),
}

/// A `reconfigure` frame, gzip-compressed; refused if larger than `limit` once compressed.
pub fn encode_reconfigure(message: &Reconfigure, limit: usize) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(message).map_err(FrameError::Json)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&json).map_err(FrameError::Gzip)?;
    let bytes = encoder.finish().map_err(FrameError::Gzip)?;
    if bytes.len() > limit {
        return Err(FrameError::TooLarge { size: bytes.len(), limit });
    }
    Ok(bytes)
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

/// A WebSocket error in words; a frame over the size limit names `cluster_max_payload`.
pub fn describe(error: &tokio_tungstenite::tungstenite::Error, limit: usize) -> String {
    match error {
        tokio_tungstenite::tungstenite::Error::Capacity(cause) => {
            format!("the peer sent a frame larger than cluster_max_payload ({limit} bytes): {cause}")
        }
        other => other.to_string(),
    }
}

/// Kong's `sync_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Unknown,
    Normal,
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
        assert!(error.to_string().contains("more than cluster_max_payload"), "{error}");
        let error = decode_reconfigure(&bytes, 20).unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }), "{error}");
        assert_eq!(serde_json::to_value(SyncStatus::PluginSetIncompatible).unwrap(), "plugin_set_incompatible");
    }
}
