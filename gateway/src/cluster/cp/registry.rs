//! The control plane's list of data planes, as `/clustering/data-planes` shows it: one row per
//! node id, written by that node's link, kept for `cluster_data_plane_purge_delay` after it was last
//! seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::cluster::protocol::SyncStatus;

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
    /// Whether a link to it is open now (not in Kong's rows: the console shows a node that went
    /// away as stale at once, rather than after its pings stop being expected).
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

    pub(super) fn insert(&self, row: DataPlaneRow) {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).insert(row.id, row);
    }

    pub(super) fn update(&self, id: Uuid, change: impl FnOnce(&mut DataPlaneRow)) {
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

/// Seconds since the epoch.
pub(super) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
