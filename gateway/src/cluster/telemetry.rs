//! The data plane's telemetry link: dials `wss://<cluster_telemetry_endpoint>/v1/ingest` (the
//! same mutual TLS and forward proxy as the configuration link, the telemetry SNI), and every
//! `analytics_flush_interval` folds what the collector holds into one batch and sends it.
//!
//! Nothing is lost silently and nothing counts twice: a batch stays until the control plane
//! acknowledges it and is sent again, with its session and sequence number, on the next link (the
//! control plane merges each once). While a batch waits, no other is made; the records behind it
//! count against `analytics_buffer_size_limit`, and the collector drops (and counts) what goes past
//! it. The count of dropped records travels with the next batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::dial::{Dialer, Hop};
use super::dp::{LinkError, Outlet, close, rand_between, send, upgrade};
use super::protocol::{
    self, ACK_DEADLINE, CLOSE_DEADLINE, Ingest, IngestAnswer, PING_INTERVAL, SILENCE_LIMIT, TELEMETRY_REDIAL_SECONDS,
};
use crate::shutdown::Shutdown;
use crate::telemetry::{Collector, Folding};

pub struct TelemetryLink {
    /// The way to `cluster_telemetry_endpoint`.
    pub dialer: Dialer,
    pub node_id: Uuid,
    pub hostname: String,
    pub collector: Arc<Collector>,
    pub folding: Arc<std::sync::Mutex<Folding>>,
    pub interval: Duration,
    pub max_payload: usize,
    /// Whether the link is up now (`gateway_telemetry_connected`).
    pub link_up: Arc<AtomicBool>,
}

/// A batch sent and not yet acknowledged.
struct Pending {
    seq: u64,
    frame: Vec<u8>,
    /// The records folded into it.
    records: u64,
    /// When it was last sent on the current link.
    sent: Option<tokio::time::Instant>,
}

/// What survives from one link to the next.
struct Outbox {
    session: Uuid,
    next_seq: u64,
    pending: Option<Pending>,
    /// Records of batches lost on the way (refused, too large) to report as dropped.
    carried: u64,
}

impl TelemetryLink {
    /// Links to the control plane's telemetry listener until `shutdown`, redialing after failures.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut outbox = Outbox { session: Uuid::new_v4(), next_seq: 1, pending: None, carried: 0 };
        loop {
            let outcome = self.session(&mut outbox, &mut shutdown).await;
            self.link_up.store(false, Ordering::Relaxed);
            if let Some(pending) = &mut outbox.pending {
                pending.sent = None;
            }
            if shutdown.fired() {
                if let Some(pending) = &outbox.pending {
                    tracing::warn!(
                        records = pending.records,
                        "stopping with a telemetry batch not acknowledged: it is lost"
                    );
                }
                return;
            }
            let delay = Duration::from_secs(rand_between(TELEMETRY_REDIAL_SECONDS));
            match outcome {
                Ok(()) => tracing::warn!(retry_in = ?delay, "the telemetry link ended; redialing"),
                Err(error) => {
                    let proxy = self.dialer.proxy.as_ref().map_or_else(|| "none".into(), |p| p.server.to_string());
                    tracing::error!(endpoint = %self.dialer.control_plane, %proxy, %error, retry_in = ?delay, buffered = self.collector.len(), "cannot send telemetry to the control plane; keeping it and redialing")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    async fn session(&mut self, outbox: &mut Outbox, shutdown: &mut Shutdown) -> Result<(), LinkError> {
        let endpoint = self.dialer.control_plane.to_string();
        let connect = async {
            let tls = self.dialer.dial(&mut |_, _| {}).await?;
            upgrade(tls, &self.dialer.control_plane, Hop::Ingest, self.node_id, &self.hostname, self.max_payload).await
        };
        let (mut ws, _) = tokio::select! {
            connected = connect => connected?,
            () = shutdown.wait() => return Ok(()),
        };
        tracing::info!(endpoint = %endpoint, node = %self.node_id, "telemetry link to the control plane up");
        self.link_up.store(true, Ordering::Relaxed);
        if let Some(pending) = &mut outbox.pending {
            send(&mut ws, Message::Binary(pending.frame.clone().into()), &endpoint).await?;
            pending.sent = Some(tokio::time::Instant::now());
        }
        let mut flush = tokio::time::interval(self.interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        let silence = tokio::time::sleep(SILENCE_LIMIT);
        tokio::pin!(silence);
        loop {
            tokio::select! {
                biased;
                () = shutdown.wait() => {
                    // A last batch, then the close: what the acknowledgement does not confirm is lost.
                    if outbox.pending.is_none() {
                        self.make_batch(outbox).await;
                        if let Some(pending) = &outbox.pending {
                            let _ = send(&mut ws, Message::Binary(pending.frame.clone().into()), &endpoint).await;
                            let _ = tokio::time::timeout(CLOSE_DEADLINE, acknowledged(&mut ws, outbox, &self.collector)).await;
                        }
                    }
                    let _ = tokio::time::timeout(CLOSE_DEADLINE, close(&mut ws)).await;
                    return Ok(());
                }
                incoming = ws.next() => {
                    silence.as_mut().reset(tokio::time::Instant::now() + SILENCE_LIMIT);
                    match incoming {
                        None | Some(Ok(Message::Close(_))) => return Err(LinkError::Closed { cp: endpoint }),
                        Some(Err(e)) => {
                            return Err(LinkError::Link { cp: endpoint, cause: protocol::describe(&e, self.max_payload) });
                        }
                        Some(Ok(Message::Binary(frame))) => answered(&frame, outbox, &self.collector),
                        Some(Ok(_)) => {}
                    }
                }
                _ = flush.tick() => {
                    match &outbox.pending {
                        None => {
                            self.make_batch(outbox).await;
                            if let Some(pending) = &mut outbox.pending {
                                send(&mut ws, Message::Binary(pending.frame.clone().into()), &endpoint).await?;
                                pending.sent = Some(tokio::time::Instant::now());
                            }
                        }
                        Some(Pending { sent: Some(at), seq, .. }) if at.elapsed() > ACK_DEADLINE => {
                            return Err(LinkError::Link {
                                cp: endpoint,
                                cause: format!("batch {seq} not acknowledged within {ACK_DEADLINE:?}"),
                            });
                        }
                        Some(_) => {}
                    }
                }
                _ = ping.tick() => send(&mut ws, Message::Ping(Vec::new().into()), &endpoint).await?,
                () = &mut silence => return Err(LinkError::Silent { cp: endpoint }),
            }
        }
    }

    /// Folds what the collector holds into the next batch, unless there is nothing to tell.
    async fn make_batch(&mut self, outbox: &mut Outbox) {
        let (records, dropped) = self.collector.drain();
        let dropped = dropped + std::mem::take(&mut outbox.carried);
        if records.is_empty() && dropped == 0 {
            return;
        }
        let count = records.len() as u64;
        // The component runs off the async threads.
        let folding = self.folding.clone();
        let (aggregates, lost) =
            tokio::task::spawn_blocking(move || folding.lock().unwrap_or_else(|p| p.into_inner()).fold(records))
                .await
                .expect("folding analytics does not panic");
        let seq = outbox.next_seq;
        let batch = Ingest::Analytics { session: outbox.session, seq, dropped: dropped + lost, aggregates };
        let frame = serde_json::to_vec(&batch).expect("batches serialise");
        if frame.len() > protocol::frame_limit(self.max_payload) {
            tracing::error!(
                bytes = frame.len(),
                records = count - lost,
                "a telemetry batch is larger than cluster_max_payload allows: its records are dropped"
            );
            // Neither its records nor the drops it carried reach the control plane: all dropped.
            outbox.carried += dropped + count;
            return;
        }
        outbox.next_seq += 1;
        self.collector.reserve(usize::try_from(count - lost).unwrap_or(usize::MAX));
        outbox.pending = Some(Pending { seq, frame, records: count - lost, sent: None });
    }
}

/// Takes the control plane's answer to the pending batch.
fn answered(frame: &[u8], outbox: &mut Outbox, collector: &Collector) {
    let answer = match serde_json::from_slice::<IngestAnswer>(frame) {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "ignoring a telemetry frame from the control plane that is not an answer");
            return;
        }
    };
    let (seq, refusal) = match answer {
        IngestAnswer::Ack { seq } => (seq, None),
        IngestAnswer::Refused { seq, message } => (seq, Some(message)),
    };
    let Some(pending) = outbox.pending.take_if(|p| p.seq == seq) else {
        tracing::debug!(seq, "an answer for a batch no longer waiting");
        return;
    };
    if let Some(message) = refusal {
        tracing::error!(seq, records = pending.records, %message, "the control plane refused a telemetry batch: its records count as dropped");
        outbox.carried += pending.records;
    }
    collector.reserve(0);
}

/// Waits for the answer to the pending batch.
async fn acknowledged(ws: &mut Outlet, outbox: &mut Outbox, collector: &Collector) {
    while outbox.pending.is_some() {
        match ws.next().await {
            Some(Ok(Message::Binary(frame))) => answered(&frame, outbox, collector),
            Some(Ok(_)) => {}
            _ => return,
        }
    }
}
