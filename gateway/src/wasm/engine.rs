//! The process's one wasmtime `Engine`, configured for many short synchronous calls, and the epoch
//! ticker that lets every call carry a deadline.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, Store, UpdateDeadline};

use super::WasmError;
use super::cache::CompileCache;

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub struct WasmRuntime {
    engine: Engine,
    /// Traps of the components this runtime runs, by name (`gateway_wasm_traps_total`).
    traps: Traps,
    ticker: Option<EpochTicker>,
    /// Where compiled components are kept between starts; tools without a prefix have none.
    cache: Option<CompileCache>,
}

/// Where instances get their memories and tables from: on demand (what the node uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allocation {
    /// An mmap per memory when an instance is made.
    OnDemand,
    /// wasmtime's pooling allocator with `slots` of each kind, reserved at start. Measured, not
    /// used: instances are made off the request path, and a full pool would fail a configuration
    /// change (docs/benchmarks.md, "Instantiation: on demand or pooled").
    #[cfg_attr(not(test), expect(dead_code, reason = "only the measurement in engine/tests.rs uses it"))]
    Pooling { slots: u32 },
}

impl WasmRuntime {
    /// A runtime that compiles every component it is given (no cache).
    pub fn new() -> Result<Self, WasmError> {
        Self::with_allocation(Allocation::OnDemand)
    }

    pub(crate) fn with_allocation(allocation: Allocation) -> Result<Self, WasmError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Measured: a component call costs ~0.5 µs with the async runtime compiled in and ~0.17 µs
        // without. No world of ours uses component-model async.
        config.concurrency_support(false);
        config.epoch_interruption(true);
        // For profiling with `perf`: guest functions get names in /tmp/perf-PID.map.
        if std::env::var_os("GATEWAY_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Allocation::Pooling { slots } = allocation {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_component_instances(slots)
                .total_core_instances(slots)
                .total_memories(slots)
                .total_tables(slots)
                // The router's table needs the most memory.
                .max_memory_size(super::router::MEMORY_LIMIT);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(super::chain(&e)))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(WasmRuntime { engine, traps: Traps::default(), ticker: Some(ticker), cache: None })
    }

    /// A runtime that keeps compiled components in `<prefix>/wasm-cache/`. A cache directory that
    /// cannot be used is logged, and components are compiled at every start instead.
    pub fn with_cache(prefix: &Path) -> Result<Self, WasmError> {
        WasmRuntime::with_cache_dir(&super::cache::default_dir(prefix))
    }

    /// A runtime that keeps compiled components in `dir` (`wasm_cache_path`).
    pub fn with_cache_dir(dir: &Path) -> Result<Self, WasmError> {
        let mut runtime = WasmRuntime::new()?;
        match CompileCache::open_dir(dir, &runtime.engine) {
            Ok(cache) => runtime.cache = Some(cache),
            Err(error) => tracing::warn!(%error, "the compile cache is off: components are compiled at every start"),
        }
        Ok(runtime)
    }

    /// `wasm` compiled as [`WasmRuntime::compile`] does, linked against the deny-all sandbox (a
    /// component that imports anything else is refused here) and listed in the trap counts: ready
    /// to instantiate. For the worlds whose component imports nothing of ours.
    pub fn prepare(
        &self,
        name: &str,
        wasm: &[u8],
    ) -> Result<wasmtime::component::InstancePre<super::sandbox::Sandbox>, WasmError> {
        let component = self.compile(name, wasm)?;
        let instantiate =
            |e: wasmtime::Error| WasmError::Instantiate { component: name.into(), cause: super::chain(&e) };
        let linker = super::sandbox::Sandbox::linker(&self.engine).map_err(instantiate)?;
        let pre = linker.instantiate_pre(&component).map_err(instantiate)?;
        self.traps.register(name);
        Ok(pre)
    }

    /// The compiled component for `wasm` (named `name` in errors and logs): from the cache when it
    /// holds an intact entry, else compiled now (and cached).
    pub fn compile(&self, name: &str, wasm: &[u8]) -> Result<Component, WasmError> {
        let compiled = match &self.cache {
            Some(cache) => cache.compile(&self.engine, name, wasm),
            None => Component::new(&self.engine, wasm),
        };
        compiled.map_err(|e| WasmError::Compile { component: name.into(), cause: super::chain(&e) })
    }

    pub fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How often each component loaded through this runtime has trapped.
    pub fn traps(&self) -> &Traps {
        &self.traps
    }

    /// Ticks for a deadline of `budget` from now.
    pub fn deadline_ticks(budget: Duration) -> u64 {
        (budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

#[cfg(test)]
mod tests;

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

/// How many times each component has trapped (a guest fault, its CPU deadline, its memory cap)
/// since the node started, by component name. A component is listed from when it is loaded, at
/// zero. Shared by everything a runtime loads; a trap is rare, so one lock is enough.
#[derive(Debug, Clone, Default)]
pub struct Traps(Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>);

impl Traps {
    /// Lists `component` (at zero until it traps).
    pub fn register(&self, component: &str) {
        self.counts_mut().entry(component.to_string()).or_insert(0);
    }

    pub fn record(&self, component: &str) {
        *self.counts_mut().entry(component.to_string()).or_insert(0) += 1;
    }

    /// Each component and its traps, by name.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.counts_mut().iter().map(|(name, n)| (name.clone(), *n)).collect()
    }

    fn counts_mut(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, u64>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A budget of CPU time for each call into one store. The epoch deadline fires once the budget has
/// passed in wall time; then the call goes on, tick by tick, until the calling thread has really
/// spent the budget on it. So a call that a busy machine preempted is not taken for a runaway
/// guest (a wall-clock deadline failed requests that way), and a guest that spins is still stopped
/// after the budget's worth of CPU.
#[derive(Clone)]
pub struct CpuBudget {
    /// The calling thread's CPU clock when the current call began, in nanoseconds.
    started: Arc<AtomicU64>,
    budget: Duration,
}

impl CpuBudget {
    /// Installs the budget's deadline callback on `store`.
    pub fn install<T: 'static>(store: &mut Store<T>, budget: Duration) -> CpuBudget {
        let started = Arc::new(AtomicU64::new(thread_cpu_nanos()));
        let since = started.clone();
        let limit = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        store.epoch_deadline_callback(move |_| {
            let used = thread_cpu_nanos().saturating_sub(since.load(Ordering::Relaxed));
            Ok(if used >= limit { UpdateDeadline::Interrupt } else { UpdateDeadline::Continue(1) })
        });
        CpuBudget { started, budget }
    }

    /// Starts the clock for a call on this thread.
    pub fn start<T>(&self, store: &mut Store<T>) {
        self.started.store(recent_thread_cpu_nanos(self.budget), Ordering::Relaxed);
        store.set_epoch_deadline(WasmRuntime::deadline_ticks(self.budget));
    }
}

thread_local! {
    /// This thread's last CPU clock reading and when it was taken.
    static LAST_READING: std::cell::Cell<Option<(std::time::Instant, u64)>> = const { std::cell::Cell::new(None) };
}

/// This thread's CPU clock as of at most a tenth of `budget` (and 1 ms) ago. Reading the thread
/// CPU clock is a system call (about a microsecond on a VM, measured: the largest cost of a plugin
/// call), while a request makes several calls in a row; reusing a recent reading as a call's start
/// only counts the thread's few microseconds before the call against it, which for the smallest
/// budget is a tenth of it.
fn recent_thread_cpu_nanos(budget: Duration) -> u64 {
    let now = std::time::Instant::now();
    let fresh_for = (budget / 10).min(Duration::from_millis(1));
    LAST_READING.with(|last| match last.get() {
        Some((at, cpu)) if now.saturating_duration_since(at) < fresh_for => cpu,
        _ => {
            let cpu = thread_cpu_nanos();
            last.set(Some((now, cpu)));
            cpu
        }
    })
}

/// CPU time this thread has used.
fn thread_cpu_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(now.tv_sec).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64)
}

/// One thread advancing the engine's epoch; never one per call.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
