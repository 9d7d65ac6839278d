//! The host end of the `analytics-component` world: one long-lived folder per node, fed the
//! records of finished requests once per flush interval (never per request, never on a request's
//! path) and asked for the aggregates of that interval. A trap loses only the records of the call
//! that trapped (counted by the caller as dropped); the next flush gets a fresh instance.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::sandbox::Sandbox;
use super::{WasmError, WasmRuntime, chain};

wasmtime::component::bindgen!({ world: "analytics-component", path: "../wit" });

pub use exports::gateway::api::analytics::{Aggregate, RequestRecord, Source};

/// How long one `add` or `flush` call may run.
const CALL_BUDGET: Duration = Duration::from_secs(5);
/// Linear memory of the folder: a flush interval's records in one `add` and its aggregates.
const MEMORY_LIMIT: usize = 256 << 20;
/// Records handed over per `add` call, so one call's arguments stay well inside the memory cap.
const RECORDS_PER_CALL: usize = 20_000;

/// The compiled analytics component, ready to instantiate.
pub struct CompiledAnalytics {
    engine: wasmtime::Engine,
    pre: AnalyticsComponentPre<Sandbox>,
    name: String,
    traps: super::engine::Traps,
}

impl CompiledAnalytics {
    /// Compiles `wasm` (the bundled component unless `analytics_component` names another) and
    /// checks that it instantiates and makes a folder, so a broken one fails the start.
    pub fn new(runtime: &WasmRuntime, name: &str, wasm: &[u8]) -> Result<Arc<Self>, WasmError> {
        let instantiate = |e: wasmtime::Error| WasmError::Instantiate { component: name.into(), cause: chain(&e) };
        let pre = AnalyticsComponentPre::new(runtime.prepare(name, wasm)?).map_err(instantiate)?;
        let (engine, traps) = (runtime.engine().clone(), runtime.traps().clone());
        let compiled = Arc::new(CompiledAnalytics { engine, pre, name: name.into(), traps });
        compiled.folder()?;
        Ok(compiled)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new, empty folder.
    pub fn folder(self: &Arc<Self>) -> Result<Folder, WasmError> {
        let mut store = Store::new(&self.engine, Sandbox::with_memory_limit(MEMORY_LIMIT));
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(WasmRuntime::deadline_ticks(CALL_BUDGET));
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| WasmError::Instantiate { component: self.name.clone(), cause: chain(&e) })?;
        let folder = bindings.gateway_api_analytics().folder().call_constructor(&mut store).map_err(|e| {
            WasmError::Call { component: self.name.clone(), function: "folder".into(), cause: store.data().failure(&e) }
        })?;
        Ok(Folder { component: self.clone(), store, bindings, folder })
    }
}

/// One instance of the component and its folder.
pub struct Folder {
    component: Arc<CompiledAnalytics>,
    store: Store<Sandbox>,
    bindings: AnalyticsComponent,
    folder: ResourceAny,
}

impl Folder {
    /// Folds `records` and returns the aggregates of everything folded since the last call. On a
    /// failure the folder is spent (a trap poisons its instance): make a new one.
    pub fn fold(&mut self, records: Vec<RequestRecord>) -> Result<Vec<Aggregate>, WasmError> {
        let mut records = records;
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(RECORDS_PER_CALL));
            self.store.set_epoch_deadline(WasmRuntime::deadline_ticks(CALL_BUDGET));
            let result =
                self.bindings.gateway_api_analytics().folder().call_add(&mut self.store, self.folder, &records);
            result.map_err(|e| self.failed("add", e))?;
            records = rest;
        }
        self.store.set_epoch_deadline(WasmRuntime::deadline_ticks(CALL_BUDGET));
        let result = self.bindings.gateway_api_analytics().folder().call_flush(&mut self.store, self.folder);
        result.map_err(|e| self.failed("flush", e))
    }

    fn failed(&self, function: &str, e: wasmtime::Error) -> WasmError {
        self.component.traps.record(&self.component.name);
        WasmError::Call {
            component: self.component.name.clone(),
            function: function.into(),
            cause: self.store.data().failure(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(minute: u64, status: u16, latency_us: u64) -> RequestRecord {
        RequestRecord {
            started_ms: minute * 60_000 + 5,
            service: Some((1, 2)),
            route: None,
            consumer: None,
            method: "GET".into(),
            status,
            bytes_in: 3,
            bytes_out: 10,
            latency_us,
            upstream_latency_us: Some(latency_us / 2),
            source: Source::Service,
        }
    }

    #[test]
    fn the_bundled_component_folds_records_per_minute_and_status_class() {
        let runtime = WasmRuntime::new().unwrap();
        let compiled = CompiledAnalytics::new(&runtime, "analytics", super::super::bundled::ANALYTICS).unwrap();
        let mut folder = compiled.folder().unwrap();
        let records = vec![record(7, 200, 1000), record(7, 204, 1000), record(7, 503, 9), record(8, 200, 20)];
        let mut aggregates = folder.fold(records).unwrap();
        aggregates.sort_by_key(|a| (a.minute, a.status_class));
        let summary: Vec<(u64, u8, u64, u64)> =
            aggregates.iter().map(|a| (a.minute, a.status_class, a.calls, a.bytes_out)).collect();
        assert_eq!(summary, vec![(7, 2, 2, 20), (7, 5, 1, 10), (8, 2, 1, 10)]);
        // 1000 µs: e = 9, m = (1000 >> 6) & 7 = 7, bucket 8 * 7 + 7.
        assert_eq!(aggregates[0].latency, vec![(63, 2)]);
        assert_eq!(aggregates[1].latency, vec![(9, 1)]);
        assert_eq!(aggregates[1].upstream_latency, vec![(4, 1)]);
        // A flush empties the folder.
        assert!(folder.fold(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn more_records_than_one_call_carries_are_all_folded() {
        let runtime = WasmRuntime::new().unwrap();
        let compiled = CompiledAnalytics::new(&runtime, "analytics", super::super::bundled::ANALYTICS).unwrap();
        let mut folder = compiled.folder().unwrap();
        let n = RECORDS_PER_CALL * 2 + 7;
        let aggregates = folder.fold((0..n).map(|_| record(1, 200, 50)).collect()).unwrap();
        assert_eq!(aggregates.iter().map(|a| a.calls).sum::<u64>(), n as u64);
    }
}
