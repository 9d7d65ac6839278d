//! Each configuration version is encoded once for every data plane: the declarative document, its
//! JSON checked against `cluster_max_payload` (the uncompressed size), then gzip. Links share the
//! result, as Kong's workers share one deflated payload; a new version replaces the old one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::catalog::State;
use crate::cluster::protocol::{self, FrameError, Reconfigure};
use crate::entities::to_declarative;

/// One configuration version, ready for every link.
#[derive(Debug)]
pub struct Payload {
    pub hash: String,
    pub version: u64,
    /// The plugins it configures, for each data plane's compatibility check.
    pub plugins: Vec<String>,
    /// The `reconfigure` frame, or why there is none (over `cluster_max_payload`).
    pub frame: Result<Bytes, FrameError>,
}

/// The newest encoded version.
pub struct Payloads {
    max_payload: usize,
    latest: tokio::sync::Mutex<Option<Arc<Payload>>>,
    encoded: AtomicU64,
}

impl Payloads {
    pub fn new(max_payload: usize) -> Payloads {
        Payloads { max_payload, latest: tokio::sync::Mutex::new(None), encoded: AtomicU64::new(0) }
    }

    /// The payload of `state`, or of a newer version already encoded. Links asking at once wait
    /// for one encoding; it runs off the runtime's threads.
    pub async fn get(&self, state: &Arc<State>) -> Arc<Payload> {
        let mut latest = self.latest.lock().await;
        if let Some(payload) = latest.as_ref()
            && (payload.hash == state.hash || payload.version > state.version)
        {
            return payload.clone();
        }
        let (state, limit) = (state.clone(), self.max_payload);
        let started = std::time::Instant::now();
        let payload = tokio::task::spawn_blocking(move || encode(&state, limit))
            .await
            .expect("encoding a configuration does not panic");
        self.encoded.fetch_add(1, Ordering::Relaxed);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &payload.frame {
            Ok(frame) => {
                tracing::info!(hash = %payload.hash, bytes = frame.len(), elapsed_ms, "configuration encoded for the data planes")
            }
            Err(error) => tracing::error!(
                hash = %payload.hash,
                %error,
                "the configuration cannot be sent to any data plane: raise cluster_max_payload on the control plane and the data planes, or make the configuration smaller"
            ),
        }
        let payload = Arc::new(payload);
        *latest = Some(payload.clone());
        payload
    }

    /// How many versions were encoded so far.
    pub fn encoded(&self) -> u64 {
        self.encoded.load(Ordering::Relaxed)
    }
}

fn encode(state: &State, limit: usize) -> Payload {
    let message = Reconfigure {
        kind: "reconfigure".into(),
        config_table: to_declarative(&state.config),
        config_hash: state.hash.clone(),
        timestamp: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
    };
    Payload {
        hash: state.hash.clone(),
        version: state.version,
        plugins: super::configured_plugins(&state.config),
        frame: protocol::encode_reconfigure(&message, limit).map(Bytes::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: u64, hash: &str) -> Arc<State> {
        Arc::new(State { version, hash: hash.into(), ..State::default() })
    }

    #[tokio::test]
    async fn each_version_is_encoded_once_however_many_links_ask() {
        let payloads = Arc::new(Payloads::new(1 << 20));
        let one = state(1, &"1".repeat(32));
        let asks: Vec<_> = (0..8)
            .map(|_| {
                let (payloads, one) = (payloads.clone(), one.clone());
                tokio::spawn(async move { payloads.get(&one).await })
            })
            .collect();
        for ask in asks {
            assert_eq!(ask.await.unwrap().hash, one.hash);
        }
        assert_eq!(payloads.encoded(), 1);
        let two = state(2, &"2".repeat(32));
        assert_eq!(payloads.get(&two).await.hash, two.hash);
        // A link still holding the older version is given the newer one, not a second encoding.
        assert_eq!(payloads.get(&one).await.hash, two.hash);
        assert_eq!(payloads.encoded(), 2);
    }

    #[tokio::test]
    async fn a_configuration_over_the_limit_has_no_frame() {
        let payload = Payloads::new(10).get(&state(1, &"1".repeat(32))).await;
        let error = payload.frame.as_ref().unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { limit: 10, .. }), "{error}");
        assert!(error.to_string().contains("cluster_max_payload"), "{error}");
    }
}
