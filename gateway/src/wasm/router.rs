//! The host end of the `router-component` world. The component is compiled once per process; each
//! configuration version gets a [`RouterPool`]: a few long-lived instances (one per worker thread),
//! each holding the loaded table, so a request is one call and never an instantiation. A trap
//! poisons only its instance: that request fails, and the instance is rebuilt on a thread of its
//! own (with back-off), never by a request on a proxy worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Mutex;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::engine::CpuBudget;
use super::sandbox::Sandbox;
use super::{WasmError, WasmRuntime, chain};

wasmtime::component::bindgen!({ world: "router-component", path: "../wit" });

pub use exports::gateway::api::routing::{HeaderRule, LoadError, PathHandling, Request, RouteMatch, RouteSpec};

pub mod decisions;
use crate::workers::PerWorker;
use decisions::Decisions;
pub use decisions::RouteQuery;

/// How long one `route` call may run before it is interrupted.
const ROUTE_BUDGET: Duration = Duration::from_millis(100);
/// How long loading a table may take.
const LOAD_BUDGET: Duration = Duration::from_secs(30);
/// Linear memory of one router instance: it holds the whole compiled table (10,000 routes with a
/// thousand regexes take about 20 MiB; regexes without a literal prefix cost the most).
pub(crate) const MEMORY_LIMIT: usize = 512 << 20;
/// After a failed rebuild, how long before the next attempt; doubled per failure up to the max.
const REBUILD_BACKOFF: Duration = Duration::from_millis(200);
const REBUILD_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The compiled router component, ready to instantiate.
pub struct CompiledRouter {
    engine: wasmtime::Engine,
    pre: RouterComponentPre<Sandbox>,
    name: String,
    traps: super::engine::Traps,
}

/// Why a table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RouterLoadError {
    #[error("the route table was refused: {}", render(.0))]
    Refused(Vec<LoadError>),
    #[error(transparent)]
    Wasm(#[from] WasmError),
}

fn render(errors: &[LoadError]) -> String {
    errors.iter().map(|e| format!("routes[{}].{}: {}", e.route, e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl CompiledRouter {
    /// Compiles `wasm` (the bundled router unless the configuration names another) and checks its
    /// imports against the sandbox.
    pub fn new(runtime: &WasmRuntime, name: &str, wasm: &[u8]) -> Result<Arc<Self>, WasmError> {
        let instantiate = |e: wasmtime::Error| WasmError::Instantiate { component: name.into(), cause: chain(&e) };
        let pre = RouterComponentPre::new(runtime.prepare(name, wasm)?).map_err(instantiate)?;
        let (engine, traps) = (runtime.engine().clone(), runtime.traps().clone());
        Ok(Arc::new(CompiledRouter { engine, pre, name: name.into(), traps }))
    }

    /// Loads `table` into one fresh instance, ready to route; the pool grows to `instances` when
    /// [`RouterPool::fill`] runs (so a new configuration is served after one load, not several).
    pub fn load(self: &Arc<Self>, table: Vec<RouteSpec>, instances: usize) -> Result<RouterPool, RouterLoadError> {
        let table = Arc::new(table);
        let first = Slot::build(self, &table)?;
        let header_names = first.header_names.clone();
        let mut slots = vec![Mutex::new(SlotState::Ready(Box::new(first)))];
        slots.extend((1..instances.max(1)).map(|_| Mutex::new(SlotState::Building)));
        let instances = Arc::new(Instances { component: self.clone(), table, slots });
        let decisions = PerWorker::new(instances.slots.len());
        Ok(RouterPool { instances, next: AtomicUsize::new(0), header_names, decisions })
    }
}

struct Slot {
    store: Store<Sandbox>,
    budget: CpuBudget,
    bindings: RouterComponent,
    router: ResourceAny,
    header_names: Vec<String>,
}

enum SlotState {
    Ready(Box<Slot>),
    /// Being built off the request path (by [`RouterPool::fill`] or after a trap); requests use
    /// the other instances meanwhile.
    Building,
}

impl Slot {
    fn build(component: &CompiledRouter, table: &[RouteSpec]) -> Result<Slot, RouterLoadError> {
        let name = &component.name;
        let mut store = Store::new(&component.engine, Sandbox::with_memory_limit(MEMORY_LIMIT));
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(WasmRuntime::deadline_ticks(LOAD_BUDGET));
        let bindings = component
            .pre
            .instantiate(&mut store)
            .map_err(|e| WasmError::Instantiate { component: name.clone(), cause: chain(&e) })?;
        let call = |function: &str, e: wasmtime::Error, store: &Store<Sandbox>| WasmError::Call {
            component: name.clone(),
            function: function.into(),
            cause: store.data().failure(&e),
        };
        let router = bindings
            .gateway_api_routing()
            .router()
            .call_load(&mut store, table)
            .map_err(|e| call("load", e, &store))?
            .map_err(RouterLoadError::Refused)?;
        let budget = CpuBudget::install(&mut store, ROUTE_BUDGET);
        budget.start(&mut store);
        let header_names = bindings
            .gateway_api_routing()
            .router()
            .call_header_names(&mut store, router)
            .map_err(|e| call("header-names", e, &store))?;
        Ok(Slot { store, budget, bindings, router, header_names })
    }
}

/// What the pool's instances and the threads rebuilding them share.
struct Instances {
    component: Arc<CompiledRouter>,
    table: Arc<Vec<RouteSpec>>,
    slots: Vec<Mutex<SlotState>>,
}

impl Instances {
    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, SlotState> {
        self.slots[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Builds slot `i` until it works, backing off between failures; never holds the slot's lock
    /// while building. Gives up when the configuration version is dropped.
    fn rebuild(instances: std::sync::Weak<Instances>, i: usize) {
        let mut backoff = REBUILD_BACKOFF;
        loop {
            let Some(this) = instances.upgrade() else { return };
            match Slot::build(&this.component, &this.table) {
                Ok(slot) => {
                    *this.lock(i) = SlotState::Ready(Box::new(slot));
                    tracing::info!(component = %this.component.name, instance = i, "router instance rebuilt");
                    return;
                }
                Err(e) => tracing::warn!(
                    component = %this.component.name,
                    instance = i,
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "building a router instance failed"
                ),
            }
            drop(this);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(REBUILD_BACKOFF_MAX);
        }
    }

    /// Starts rebuilding slot `i` on a thread of its own: the request path never waits for it.
    fn schedule_rebuild(self: &Arc<Self>, i: usize) {
        let weak = Arc::downgrade(self);
        let spawned =
            std::thread::Builder::new().name("router-rebuild".into()).spawn(move || Instances::rebuild(weak, i));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a thread to rebuild a router instance");
        }
    }
}

/// One configuration version's router: route requests with [`RouterPool::route`].
pub struct RouterPool {
    instances: Arc<Instances>,
    next: AtomicUsize,
    header_names: Vec<String>,
    /// Decisions remembered: one cache per proxy worker thread, and the first for other threads.
    decisions: PerWorker<Decisions>,
}

/// A route call that failed inside the component (a trap, a deadline); the request should get 500.
#[derive(Debug, thiserror::Error)]
#[error("router component failed: {0}")]
pub struct RouteFailure(pub String);

impl RouterPool {
    /// The request headers the table looks at (lower-case): pass only these in a [`Request`].
    pub fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// Builds the instances [`CompiledRouter::load`] left pending. Runs on a blocking thread.
    pub fn fill(&self) {
        let instances = &self.instances;
        for i in 0..instances.slots.len() {
            if matches!(*instances.lock(i), SlotState::Ready(_)) {
                continue;
            }
            match Slot::build(&instances.component, &instances.table) {
                Ok(built) => *instances.lock(i) = SlotState::Ready(Box::new(built)),
                Err(e) => {
                    tracing::warn!(component = %instances.component.name, error = %e, "building a router instance failed; retrying in the background");
                    instances.schedule_rebuild(i);
                }
            }
        }
    }

    /// The decision for `query`: the one remembered for a request of the same shape, or the
    /// component's (then remembered; a failure is not).
    pub fn decide(&self, query: &RouteQuery<'_>) -> Result<Option<RouteMatch>, RouteFailure> {
        if let Some(known) = self.decisions.lock().get(query) {
            return Ok(known);
        }
        let decision = self.route(&query.to_request())?;
        self.decisions.lock().insert(query, &decision);
        Ok(decision)
    }

    /// The component's decision for `request`, always asked.
    pub fn route(&self, request: &Request) -> Result<Option<RouteMatch>, RouteFailure> {
        let instances = &self.instances;
        let n = instances.slots.len();
        // A proxy worker starts from its own instance (kept in its core's caches), other threads
        // from a rotating start. The first free ready instance from there; if all are busy, wait
        // for a ready one (a route call takes about a microsecond). Instances being built are
        // skipped.
        let start = crate::workers::current().unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let free = (0..n)
            .map(|k| (start + k) % n)
            .filter_map(|i| instances.slots[i].try_lock().ok().map(|g| (i, g)))
            .find(|(_, g)| matches!(**g, SlotState::Ready(_)));
        let found = free.or_else(|| {
            (0..n)
                .map(|k| (start + k) % n)
                .map(|i| (i, instances.lock(i)))
                .find(|(_, g)| matches!(**g, SlotState::Ready(_)))
        });
        let Some((i, mut guard)) = found else {
            return Err(RouteFailure("every router instance is being rebuilt after a failure".into()));
        };
        let SlotState::Ready(slot) = &mut *guard else { unreachable!("only ready instances are chosen") };
        let Slot { store, budget, bindings, router, .. } = &mut **slot;
        budget.start(store);
        match bindings.gateway_api_routing().router().call_route(&mut *store, *router, request) {
            Ok(decision) => Ok(decision),
            Err(e) => {
                // A trap leaves the instance unusable: drop it, fail this request, rebuild it on a
                // thread of its own.
                let cause = store.data().failure(&e);
                tracing::error!(component = %instances.component.name, error = %cause, "router component trapped; rebuilding its instance");
                instances.component.traps.record(&instances.component.name);
                *guard = SlotState::Building;
                drop(guard);
                instances.schedule_rebuild(i);
                Err(RouteFailure(cause))
            }
        }
    }
}

#[cfg(test)]
mod tests;
