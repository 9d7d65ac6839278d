//! The host end of the `router-component` world. The component is compiled once per process; each
//! configuration version gets a [`RouterPool`]: a few long-lived instances (one per worker thread),
//! each holding the loaded table, so a request is one call and never an instantiation. A trap
//! poisons only its instance: that request fails, and the instance is rebuilt for the next one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::sync::Mutex;
use wasmtime::Store;
use wasmtime::component::{Component, ResourceAny};

use super::sandbox::Sandbox;
use super::{WasmError, WasmRuntime, chain};

wasmtime::component::bindgen!({ world: "router-component", path: "../wit" });

pub use exports::gateway::api::routing::{HeaderRule, LoadError, PathHandling, Request, RouteMatch, RouteSpec};

/// How long one `route` call may run before it is interrupted.
const ROUTE_BUDGET: Duration = Duration::from_millis(100);
/// How long loading a table may take.
const LOAD_BUDGET: Duration = Duration::from_secs(30);
/// Linear memory of one router instance: it holds the whole compiled table (10,000 routes with a
/// thousand regexes take about 20 MiB; regexes without a literal prefix cost the most).
const MEMORY_LIMIT: usize = 512 << 20;
/// After a failed rebuild, how long an instance stays down before the next attempt.
const REBUILD_BACKOFF: Duration = Duration::from_millis(200);

/// The compiled router component, ready to instantiate.
pub struct CompiledRouter {
    engine: wasmtime::Engine,
    pre: RouterComponentPre<Sandbox>,
    name: String,
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
        let engine = runtime.engine().clone();
        let component = Component::new(&engine, wasm)
            .map_err(|e| WasmError::Compile { component: name.into(), cause: chain(&e) })?;
        let instantiate = |e: wasmtime::Error| WasmError::Instantiate { component: name.into(), cause: chain(&e) };
        let linker = Sandbox::linker(&engine).map_err(instantiate)?;
        let pre = linker.instantiate_pre(&component).map_err(instantiate)?;
        let pre = RouterComponentPre::new(pre).map_err(instantiate)?;
        Ok(Arc::new(CompiledRouter { engine, pre, name: name.into() }))
    }

    /// Loads `table` into one fresh instance, ready to route; the pool grows to `instances` when
    /// [`RouterPool::fill`] runs (so a new configuration is served after one load, not several).
    pub fn load(self: &Arc<Self>, table: Vec<RouteSpec>, instances: usize) -> Result<RouterPool, RouterLoadError> {
        let table = Arc::new(table);
        let first = Slot::build(self, &table)?;
        let header_names = first.header_names.clone();
        let mut slots = vec![Mutex::new(SlotState::Ready(Box::new(first)))];
        slots.extend((1..instances.max(1)).map(|_| Mutex::new(SlotState::Pending)));
        Ok(RouterPool { component: self.clone(), table, slots, next: AtomicUsize::new(0), header_names })
    }
}

struct Slot {
    store: Store<Sandbox>,
    bindings: RouterComponent,
    router: ResourceAny,
    header_names: Vec<String>,
}

enum SlotState {
    Ready(Box<Slot>),
    /// Not built yet: [`RouterPool::fill`] builds it; requests use the other instances meanwhile.
    Pending,
    /// Poisoned by a trap (or never rebuilt since): rebuild when `retry_at` has passed.
    Down {
        retry_at: Instant,
    },
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
        store.set_epoch_deadline(WasmRuntime::deadline_ticks(ROUTE_BUDGET));
        let header_names = bindings
            .gateway_api_routing()
            .router()
            .call_header_names(&mut store, router)
            .map_err(|e| call("header-names", e, &store))?;
        Ok(Slot { store, bindings, router, header_names })
    }
}

/// One configuration version's router: route requests with [`RouterPool::route`].
pub struct RouterPool {
    component: Arc<CompiledRouter>,
    table: Arc<Vec<RouteSpec>>,
    slots: Vec<Mutex<SlotState>>,
    next: AtomicUsize,
    header_names: Vec<String>,
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
        for slot in &self.slots {
            if !matches!(*slot.lock().unwrap_or_else(|p| p.into_inner()), SlotState::Pending) {
                continue;
            }
            let state = match Slot::build(&self.component, &self.table) {
                Ok(built) => SlotState::Ready(Box::new(built)),
                Err(e) => {
                    tracing::warn!(component = %self.component.name, error = %e, "building a router instance failed; retrying on use");
                    SlotState::Down { retry_at: Instant::now() + REBUILD_BACKOFF }
                }
            };
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = state;
        }
    }

    pub fn route(&self, request: &Request) -> Result<Option<RouteMatch>, RouteFailure> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        // Take the first free instance from a rotating start; wait for one only if all are busy
        // (the first is never pending).
        let mut guard = (0..n)
            .filter_map(|i| self.slots[(start + i) % n].try_lock().ok())
            .find(|g| !matches!(**g, SlotState::Pending))
            .unwrap_or_else(|| self.slots[0].lock().unwrap_or_else(|p| p.into_inner()));
        if let SlotState::Down { retry_at } = &*guard {
            if Instant::now() < *retry_at {
                return Err(RouteFailure("the router instance is being rebuilt after a failure".into()));
            }
            match Slot::build(&self.component, &self.table) {
                Ok(slot) => {
                    tracing::info!(component = %self.component.name, "router instance rebuilt");
                    *guard = SlotState::Ready(Box::new(slot));
                }
                Err(e) => {
                    *guard = SlotState::Down { retry_at: Instant::now() + REBUILD_BACKOFF };
                    return Err(RouteFailure(format!("rebuilding the router instance: {e}")));
                }
            }
        }
        let SlotState::Ready(slot) = &mut *guard else { unreachable!("the slot was just made ready") };
        let Slot { store, bindings, router, .. } = &mut **slot;
        store.set_epoch_deadline(WasmRuntime::deadline_ticks(ROUTE_BUDGET));
        match bindings.gateway_api_routing().router().call_route(&mut *store, *router, request) {
            Ok(decision) => Ok(decision),
            Err(e) => {
                // A trap leaves the instance unusable: drop it, fail this request, rebuild on next use.
                let cause = store.data().failure(&e);
                tracing::error!(component = %self.component.name, error = %cause, "router component trapped; rebuilding its instance");
                *guard = SlotState::Down { retry_at: Instant::now() };
                Err(RouteFailure(cause))
            }
        }
    }
}

#[cfg(test)]
mod tests;
