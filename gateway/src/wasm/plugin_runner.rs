//! Runs one configuration version's plugins in the request's phases: the proxy's [`PhaseRunner`]
//! for wasm plugins.
//!
//! - **Which plugins**: each plugin name runs at most once per request, with the configuration of
//!   its most specific plugin entity (Kong's precedence: consumer+route+service, consumer+route,
//!   consumer+service, route+service, consumer, route, service, global), looked up in `access`
//!   in priority order, so a consumer set by an auth plugin counts for the plugins after it.
//!   `rewrite` runs global plugins only. The set found in `access` (or, for a request never
//!   routed, the global plugins) runs the later phases.
//! - **Instances**: a plugin entity's configured instances live in a pool that the next version
//!   takes over when the entity is unchanged; calls never instantiate on the request path unless
//!   the pool runs dry (more requests in flight than instances). Each worker thread takes back the
//!   instance it used last (its own slot), so an instance's memory stays in one core's caches;
//!   and a request refers to its plugins by index, so workers running the same plugins write no
//!   shared reference counts.
//! - **Failures**: a trap, the CPU deadline or the memory cap fails only the request (500) and
//!   retires the instance; a replacement is made off the request path. A plugin that traps again
//!   and again is paused with exponential back-off: its requests get 500 without calling it, and
//!   the log says so once per pause.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::{request, response};
use hyper::{HeaderMap, StatusCode};
use uuid::Uuid;

use super::plugin::{
    CallContext, Directory, DirectoryHandle, Flow as WasmFlow, LoadedPlugin, LocalDirectory, NodeShared,
    Phase as WasmPhase, PluginEntity, PluginFailure, PluginInstance, RequestHandle, ResponseHandle,
};
use super::plugin_set::Limits;
use crate::entities::{Config, PluginProtocol};
use crate::proxy::context::RequestContext;
use crate::proxy::phases::{BodyState, Exit, Fault, Flow, Phase, PhaseError, PhaseRunner};

/// Consecutive traps after which a plugin is paused.
const TRAPS_BEFORE_BACKOFF: u32 = 3;
/// The first pause; each further trap after one doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Phases as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Phases(u8);

impl Phases {
    fn bit(phase: Phase) -> u8 {
        match phase {
            Phase::Rewrite => 1,
            Phase::Access => 2,
            Phase::HeaderFilter => 4,
            Phase::BodyFilter => 8,
            Phase::Log => 16,
        }
    }

    fn has(self, phase: Phase) -> bool {
        self.0 & Phases::bit(phase) != 0
    }

    fn of(declared: &[WasmPhase]) -> Phases {
        Phases(declared.iter().fold(0, |bits, p| {
            bits | Phases::bit(match p {
                WasmPhase::Rewrite => Phase::Rewrite,
                WasmPhase::Access => Phase::Access,
                WasmPhase::HeaderFilter => Phase::HeaderFilter,
                WasmPhase::BodyFilter => Phase::BodyFilter,
                WasmPhase::Log => Phase::Log,
            })
        }))
    }
}

/// A plugin with one checked configuration, and its instances.
pub struct Configured {
    plugin: Arc<LoadedPlugin>,
    config: String,
    phases: Phases,
    limits: Limits,
    shared: Arc<NodeShared>,
    /// Idle instances by thread (see [`Local`]): a worker takes back the instance it used last, so
    /// neither the lock nor the instance's memory moves between cores.
    local: Box<[Local]>,
    idle: Mutex<Vec<PluginInstance>>,
    /// Instances kept idle at most.
    keep: AtomicUsize,
    health: Mutex<Health>,
    /// Whether `health` has anything to say (a trap since the last good call, a pause, a refused
    /// configuration): a call reads this flag instead of locking `health`.
    troubled: AtomicBool,
}

/// One thread's idle instance, on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Local(Mutex<Option<PluginInstance>>);

/// Per-thread slots a configured plugin keeps.
const LOCAL_SLOTS: usize = 16;

/// This thread's slot among [`LOCAL_SLOTS`]: a proxy worker's own; other threads take numbers in
/// turn (a slot is only a preference: a thread that finds it empty takes a shared instance).
fn local_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = crate::workers::current().unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed)) % LOCAL_SLOTS;
    }
    SLOT.with(|slot| *slot)
}

#[derive(Debug, Default)]
struct Health {
    /// Traps since the last call that went well.
    traps: u32,
    /// Paused until then.
    paused_until: Option<Instant>,
    /// The configuration cannot be set up (the plugin's `configure` refused it): every call fails.
    broken: Option<String>,
}

impl Configured {
    pub fn new(plugin: Arc<LoadedPlugin>, config: String, limits: Limits, shared: Arc<NodeShared>) -> Configured {
        Configured {
            phases: Phases::of(&plugin.descriptor.phases),
            plugin,
            config,
            limits,
            shared,
            local: (0..LOCAL_SLOTS).map(|_| Local::default()).collect(),
            idle: Mutex::new(Vec::new()),
            keep: AtomicUsize::new(1),
            health: Mutex::new(Health::default()),
            troubled: AtomicBool::new(false),
        }
    }

    fn name(&self) -> &str {
        &self.plugin.name
    }

    /// Makes the first instance now (so the configuration is known to work before requests come)
    /// and keeps up to `pool` idle.
    pub fn prepare(&self, pool: usize) {
        self.keep.store(pool.max(1) * 2, Ordering::Relaxed);
        match self.instance() {
            Ok(instance) => self.put_shared(instance),
            Err(PluginFailure::Configure { reason, .. }) => {
                tracing::error!(plugin = %self.name(), %reason, "the plugin refused its configuration; its requests get 500");
                self.lock_health().broken = Some(reason);
                self.troubled.store(true, Ordering::Release);
            }
            Err(failure) => {
                tracing::error!(plugin = %self.name(), error = %failure, "a plugin instance could not be made; retried on its next request");
            }
        }
    }

    /// Fills the pool up to `pool` instances. Blocking; meant for a background thread.
    fn fill(&self, pool: usize) {
        while self.idle.lock().unwrap_or_else(|p| p.into_inner()).len() < pool {
            if self.lock_health().broken.is_some() {
                return;
            }
            match self.instance() {
                Ok(instance) => self.put_shared(instance),
                Err(_) => return,
            }
        }
    }

    fn instance(&self) -> Result<PluginInstance, PluginFailure> {
        self.plugin.configure(&self.config, self.limits.timeout, self.limits.memory, self.shared.clone())
    }

    /// Back to the pool after a call: this thread's slot first.
    fn put(&self, instance: PluginInstance) {
        let instance = {
            let mut local = self.local[local_slot()].0.lock().unwrap_or_else(|p| p.into_inner());
            match local.as_ref() {
                None => {
                    *local = Some(instance);
                    return;
                }
                Some(_) => instance,
            }
        };
        self.put_shared(instance);
    }

    /// Into the pool any thread takes from (instances made off the request path).
    fn put_shared(&self, instance: PluginInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.keep.load(Ordering::Relaxed) {
            idle.push(instance);
        }
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether calls may be made now; `Err` says why not.
    fn available(&self) -> Result<(), String> {
        if !self.troubled.load(Ordering::Acquire) {
            return Ok(());
        }
        let health = self.lock_health();
        if let Some(reason) = &health.broken {
            return Err(format!("its configuration was refused: {reason}"));
        }
        match health.paused_until {
            Some(until) if until > Instant::now() => Err(format!("paused after {} traps in a row", health.traps)),
            _ => Ok(()),
        }
    }

    /// Runs `f` on an instance from the pool in `phase`, with the request's `call` context.
    fn call<R>(
        self: &Arc<Self>,
        phase: Phase,
        call: &mut CallContext,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, PluginFailure>,
    ) -> Result<R, PhaseError> {
        let mut slot = None;
        let result = self.call_in(&mut slot, phase, call, f);
        if let Some(instance) = slot {
            self.put(instance);
        }
        result
    }

    /// Runs `f` on the instance in `slot` (one from the pool, or a new one, when it is empty) and
    /// leaves it there, unless it trapped (it is then retired and replaced off the request path).
    fn call_in<R>(
        self: &Arc<Self>,
        slot: &mut Option<PluginInstance>,
        phase: Phase,
        call: &mut CallContext,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, PluginFailure>,
    ) -> Result<R, PhaseError> {
        let error = |reason: String, fault: Fault| PhaseError { plugin: self.name().to_string(), phase, reason, fault };
        self.available().map_err(|reason| error(reason, Fault::Unavailable))?;
        let instance = match slot {
            Some(instance) => instance,
            None => {
                let local = self.local[local_slot()].0.lock().unwrap_or_else(|p| p.into_inner()).take();
                let pooled = local.or_else(|| self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop());
                let instance = match pooled {
                    Some(instance) => instance,
                    None => self.instance().map_err(|failure| {
                        let fault =
                            if matches!(failure, PluginFailure::Configure { .. }) { Fault::Error } else { Fault::Trap };
                        self.trapped();
                        error(failure.to_string(), fault)
                    })?,
                };
                slot.insert(instance)
            }
        };
        instance.set_call(std::mem::take(call));
        let result = f(instance);
        *call = instance.take_call();
        match result {
            Ok(r) => {
                if self.troubled.load(Ordering::Acquire) {
                    let mut health = self.lock_health();
                    if health.traps > 0 {
                        health.traps = 0;
                        health.paused_until = None;
                    }
                    self.troubled.store(health.broken.is_some(), Ordering::Release);
                }
                Ok(r)
            }
            Err(failure) if failure.retires_instance() => {
                *slot = None;
                self.plugin.traps.record(self.name());
                self.trapped();
                self.replace();
                Err(error(failure.to_string(), Fault::Trap))
            }
            Err(failure) => Err(error(failure.to_string(), Fault::Error)),
        }
    }

    /// Counts a trap; pauses the plugin once they keep coming.
    fn trapped(&self) {
        let mut health = self.lock_health();
        self.troubled.store(true, Ordering::Release);
        health.traps = health.traps.saturating_add(1);
        if health.traps >= TRAPS_BEFORE_BACKOFF {
            let doublings = (health.traps - TRAPS_BEFORE_BACKOFF).min(16);
            let pause = FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
            health.paused_until = Some(Instant::now() + pause);
            tracing::warn!(
                plugin = %self.name(),
                traps = health.traps,
                pause_ms = pause.as_millis() as u64,
                "plugin keeps trapping; its requests get 500 without calling it until the pause ends"
            );
        }
    }

    /// Makes a replacement for a retired instance off the request path.
    fn replace(self: &Arc<Self>) {
        let this = self.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || {
                if this.available().is_ok()
                    && let Ok(instance) = this.instance()
                {
                    this.put_shared(instance);
                }
            });
        }
    }
}

/// A plugin entity as a request may meet it: its configured plugin, its protocols, and where
/// what it tells the plugin about itself is (its index in the directory's entities).
struct Entry {
    configured: Arc<Configured>,
    protocols: Vec<PluginProtocol>,
    entity: usize,
}

/// A plugin a request runs: its entry's place in the version's [`WasmPhases::entries`]. An index,
/// not a reference count: two workers running the same plugins then share no cache line that
/// either writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running(usize);

/// Where a plugin entity applies: `(consumer, route, service)`, each `None` when not scoped to one.
type Scope = (Option<Uuid>, Option<Uuid>, Option<Uuid>);

/// One plugin name and its entities by scope.
struct Slot {
    /// Entries by scope, as indexes into [`WasmPhases::entries`]. Looked up for every plugin of
    /// every request, with keys the configuration alone makes: a fast hash, not std's
    /// flood-resistant one.
    entries: HashMap<Scope, usize, foldhash::fast::RandomState>,
    /// Which of the eight precedence levels have an entity (bit `i` for [`LEVELS`]`[i]`).
    levels: u8,
}

/// Kong's precedence, most specific first: which of consumer, route, service a level names.
const LEVELS: [(bool, bool, bool); 8] = [
    (true, true, true),
    (true, true, false),
    (true, false, true),
    (false, true, true),
    (true, false, false),
    (false, true, false),
    (false, false, true),
    (false, false, false),
];

fn level_of(scope: &Scope) -> usize {
    let pattern = (scope.0.is_some(), scope.1.is_some(), scope.2.is_some());
    LEVELS.iter().position(|l| *l == pattern).expect("every pattern is a level")
}

impl Slot {
    /// The most specific entity for a request with these ids.
    fn resolve(&self, consumer: Option<Uuid>, route: Option<Uuid>, service: Option<Uuid>) -> Option<Running> {
        LEVELS.iter().enumerate().filter(|(i, _)| self.levels & (1 << i) != 0).find_map(|(_, &(c, r, s))| {
            let key = (
                if c { Some(consumer?) } else { None },
                if r { Some(route?) } else { None },
                if s { Some(service?) } else { None },
            );
            self.entries.get(&key).copied().map(Running)
        })
    }
}

/// One configuration version's plugins.
pub struct WasmPhases {
    /// Every plugin entity the node runs.
    entries: Vec<Entry>,
    /// Plugin names in run order (priority, higher first; then name).
    slots: Vec<Slot>,
    /// The global entities, in run order: `rewrite`, and the set of a request never routed.
    globals: Vec<Running>,
    directory: Arc<Directory>,
    /// The directory as each thread slot hands it to calls (see `LocalDirectory`).
    local_directories: Vec<DirectoryHandle>,
}

impl WasmPhases {
    /// The runner for `config`; `configured(name, config)` gives the configured plugin of an
    /// entity (`None`: the node does not run that plugin, and the entity is skipped).
    pub fn build(config: &Config, mut configured: impl FnMut(&str, &str) -> Option<Arc<Configured>>) -> WasmPhases {
        let mut by_name: HashMap<&str, (i32, Slot)> = HashMap::new();
        let mut entries = Vec::new();
        let mut about = Vec::new();
        let mut fresh = Vec::new();
        for entity in config.plugins.iter().filter(|p| p.enabled) {
            let checked = entity.config.to_string();
            let Some(c) = configured(&entity.name, &checked) else { continue };
            if Arc::strong_count(&c) == 1 {
                fresh.push(c.clone());
            }
            let scope = (entity.consumer.map(|r| r.id), entity.route.map(|r| r.id), entity.service.map(|r| r.id));
            let priority = c.plugin.descriptor.priority;
            let (_, slot) = by_name
                .entry(&entity.name)
                .or_insert_with(|| (priority, Slot { entries: HashMap::default(), levels: 0 }));
            slot.levels |= 1 << level_of(&scope);
            about.push(PluginEntity {
                id: entity.id.to_string(),
                route: entity.route.map(|r| r.id.to_string()),
                service: entity.service.map(|r| r.id.to_string()),
                consumer: entity.consumer.map(|r| r.id.to_string()),
            });
            slot.entries.insert(scope, entries.len());
            entries.push(Entry { configured: c, protocols: entity.protocols.clone(), entity: about.len() - 1 });
        }
        let mut ordered: Vec<(&str, i32, Slot)> = by_name.into_iter().map(|(n, (p, s))| (n, p, s)).collect();
        ordered.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let slots: Vec<Slot> = ordered.into_iter().map(|(_, _, s)| s).collect();
        let globals = slots.iter().filter_map(|s| s.entries.get(&(None, None, None)).copied().map(Running)).collect();
        if !fresh.is_empty() {
            // The pool fills in the background, one instance per worker, as the router's does.
            let pool = fresh.first().map_or(1, |c| c.keep.load(Ordering::Relaxed) / 2);
            let spawned = std::thread::Builder::new().name("plugin-fill".into()).spawn(move || {
                for c in fresh {
                    c.fill(pool);
                }
            });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start a thread to fill plugin pools; they fill on demand");
            }
        }
        let directory = Arc::new(Directory::new(config).with_entities(about));
        let local_directories = (0..LOCAL_SLOTS).map(|_| Arc::new(LocalDirectory(directory.clone()))).collect();
        WasmPhases { entries, slots, globals, directory, local_directories }
    }

    /// What the plugins are told about the request: its route, service, consumer and shared map.
    fn call_context(&self, ctx: &mut RequestContext) -> CallContext {
        CallContext {
            plugin: String::new(),
            route: ctx.route().map(|r| r.id),
            service: ctx.service().map(|s| s.id),
            consumer: ctx.consumer.as_ref().map(|c| c.id),
            credential: ctx.credential.clone(),
            shared: std::mem::take(&mut ctx.shared),
            directory: Some(self.local_directories[local_slot()].clone()),
            request_id: Some(ctx.request_id),
            ..CallContext::default()
        }
    }

    /// Runs `rewrite` or `access` on `req`: the plugins `next` yields, one at a time (it sees
    /// the consumer the plugins before it set). Every plugin it yields is kept for the later
    /// phases, whether or not it declares this one.
    fn request_phase(
        &self,
        phase: Phase,
        ctx: &mut RequestContext,
        req: &mut request::Parts,
        mut next: impl FnMut(&RequestContext) -> Option<Option<Running>>,
    ) -> Result<Flow, PhaseError> {
        let wasm_phase = if phase == Phase::Rewrite { WasmPhase::Rewrite } else { WasmPhase::Access };
        // Made on the first call: a route none of whose plugins runs in this phase pays nothing.
        let mut handle: Option<RequestHandle> = None;
        let mut call: Option<CallContext> = None;
        // Back after the body was read for a plugin: the plugins before it stay as they were and
        // it runs again.
        let resume = ctx.plugins.as_mut().and_then(|p| p.resume.take()).filter(|r| r.phase == phase);
        let (mut list, mut skip) = match resume {
            Some(resume) => (resume.list, resume.skip),
            None => (Vec::with_capacity(self.slots.len()), 0),
        };
        let mut taken = 0;
        let mut outcome = Ok(Flow::Continue);
        while let Some(found) = next(ctx) {
            taken += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let Some(running) = found else { continue };
            list.push(running);
            let c = &self.entries[running.0];
            if !c.configured.phases.has(phase) {
                continue;
            }
            let handle = handle.get_or_insert_with(|| request_handle(ctx, req));
            let call = call.get_or_insert_with(|| self.call_context(ctx));
            call.entity = Some(c.entity);
            let error = |reason: &str| PhaseError {
                plugin: c.configured.name().to_string(),
                phase,
                reason: reason.into(),
                fault: Fault::Error,
            };
            let mut asked_again = false;
            let flow = loop {
                match c.configured.call(phase, call, |i| i.request_phase(wasm_phase, handle)) {
                    Ok(WasmFlow::ReadBody(max))
                        if matches!(handle.body, BodyState::Unread) && handle.new_body.is_none() =>
                    {
                        break Ok(Step::ReadBody(u64::from(max)));
                    }
                    // The body is here already (read for an earlier plugin, or set by one).
                    Ok(WasmFlow::ReadBody(_)) if !asked_again => asked_again = true,
                    Ok(WasmFlow::ReadBody(_)) => break Err(error("asked for the request body again once it had it")),
                    Ok(WasmFlow::Proceed) => break Ok(Step::Proceed),
                    Ok(WasmFlow::Respond(exit)) => break exit_of(exit).map(Step::Respond).map_err(|e| error(&e)),
                    Err(e) => break Err(e),
                }
            };
            if call.consumer_changed {
                call.consumer_changed = false;
                ctx.consumer = call.consumer.and_then(|id| self.directory.consumer_ref(id));
                ctx.credential = call.credential.clone();
            }
            match flow {
                Ok(Step::Proceed) => continue,
                Ok(Step::Respond(exit)) => outcome = Ok(Flow::Respond(exit)),
                Ok(Step::ReadBody(max)) => {
                    list.pop();
                    let resume = Resume { phase, skip: taken - 1, list: std::mem::take(&mut list) };
                    ctx.plugins.get_or_insert_with(Box::default).resume = Some(resume);
                    outcome = Ok(Flow::ReadBody(max));
                }
                Err(e) => outcome = Err(e),
            }
            break;
        }
        let mut ahead = Vec::new();
        if let Some(call) = &mut call {
            ctx.shared = std::mem::take(&mut call.shared);
            ahead = std::mem::take(&mut call.response_headers);
        }
        let restored = match &mut handle {
            Some(handle) => {
                if let Some(body) = handle.new_body.take() {
                    ctx.body_replacement = Some(body);
                }
                ctx.host_set |= std::mem::take(&mut handle.host_set);
                restore(handle, req)
            }
            None => Ok(()),
        };
        let keep = list.iter().any(|&c| self.phases(c).has(Phase::HeaderFilter) || self.phases(c).has(Phase::Log));
        let kept = keep.then(|| {
            let view = match handle {
                Some(handle) => handle,
                None => request_view(ctx, req),
            };
            RequestHandle { headers: req.headers.clone(), body_settable: false, ..view }
        });
        let state = ctx.plugins.get_or_insert_with(Box::default);
        if state.response_headers.is_empty() {
            state.response_headers = ahead;
        } else {
            state.response_headers.append(&mut ahead);
        }
        if !matches!(outcome, Ok(Flow::ReadBody(_))) {
            state.list = list;
            state.request = kept;
        }
        let flow = outcome?;
        restored.map_err(|reason| PhaseError { plugin: "(plugins)".into(), phase, reason, fault: Fault::Error })?;
        Ok(flow)
    }

    /// The phases a plugin the request runs declares.
    fn phases(&self, running: Running) -> Phases {
        self.entries[running.0].configured.phases
    }

    fn list(ctx: &RequestContext) -> &[Running] {
        ctx.plugins.as_deref().map_or(&[], |p| p.list.as_slice())
    }
}

/// The request's plugins (resolved in `rewrite` or `access`) and their view of the request and
/// response, for the later phases.
#[derive(Default)]
pub struct RequestPlugins {
    list: Vec<Running>,
    request: Option<RequestHandle>,
    response: Option<ResponseHandle>,
    /// Where a phase stopped to read the body.
    resume: Option<Resume>,
    /// Headers plugins set ahead of the response (`set-response-headers`), put on its head before
    /// `header_filter`.
    response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The plugins (by their place in `list`) that called `pass-body` in `header_filter`: their
    /// `body_filter` is not called for this response.
    body_passed: Vec<usize>,
    /// The instances of the plugins (by their place in `list`) that filter the response body:
    /// the one that ran a plugin's `header_filter` runs each of its `body_filter` calls for this
    /// response and no other request's, so it may keep the response's state; back to the pool
    /// at `eof`, dropped if the body never ends. (In a mutex only to make the request context
    /// `Sync`, as a response body must be; it is never contended: `get_mut`.)
    pinned: Mutex<Vec<Option<PluginInstance>>>,
}

impl RequestPlugins {
    fn pinned(&mut self, i: usize) -> &mut Option<PluginInstance> {
        let len = self.list.len().max(i + 1);
        let pinned = self.pinned.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pinned.len() <= i {
            pinned.resize_with(len, || None);
        }
        &mut pinned[i]
    }
}

/// A phase stopped for the request body: where to pick it up.
struct Resume {
    phase: Phase,
    /// Plugins (`next` calls) passed before the one that asked.
    skip: usize,
    /// The plugins resolved so far.
    list: Vec<Running>,
}

/// What one plugin's `rewrite` or `access` call decided.
enum Step {
    Proceed,
    Respond(Exit),
    ReadBody(u64),
}

impl PhaseRunner for WasmPhases {
    fn wants(&self, phase: Phase, ctx: &RequestContext) -> bool {
        match phase {
            Phase::Rewrite => !self.globals.is_empty(),
            Phase::Access => !self.slots.is_empty(),
            // header_filter also keeps the response head for body_filter and log.
            Phase::HeaderFilter => {
                ctx.plugins.as_ref().is_some_and(|p| !p.response_headers.is_empty())
                    || WasmPhases::list(ctx).iter().any(|&c| {
                        let phases = self.phases(c);
                        phases.has(Phase::HeaderFilter) || phases.has(Phase::BodyFilter) || phases.has(Phase::Log)
                    })
            }
            Phase::BodyFilter => ctx.plugins.as_deref().is_some_and(|p| {
                p.list.iter().enumerate().any(|(at, &c)| self.phases(c).has(phase) && !p.body_passed.contains(&at))
            }),
            _ => WasmPhases::list(ctx).iter().any(|&c| self.phases(c).has(phase)),
        }
    }

    fn rewrite(&self, ctx: &mut RequestContext, req: &mut request::Parts) -> Result<Flow, PhaseError> {
        let protocol = request_protocol(ctx, &req.headers);
        let mut globals = self.globals.iter();
        self.request_phase(Phase::Rewrite, ctx, req, |_| {
            let running = *globals.next()?;
            Some(self.entries[running.0].protocols.contains(&protocol).then_some(running))
        })
    }

    fn access(&self, ctx: &mut RequestContext, req: &mut request::Parts) -> Result<Flow, PhaseError> {
        let protocol = request_protocol(ctx, &req.headers);
        let route = ctx.route().map(|r| r.id);
        let service = ctx.service().map(|s| s.id);
        let mut slots = self.slots.iter();
        self.request_phase(Phase::Access, ctx, req, |ctx| {
            let slot = slots.next()?;
            let found = slot.resolve(ctx.consumer.as_ref().map(|c| c.id), route, service);
            Some(found.filter(|r| self.entries[r.0].protocols.contains(&protocol)))
        })
    }

    fn header_filter(&self, ctx: &mut RequestContext, res: &mut response::Parts) -> Result<(), PhaseError> {
        let Some(mut state) = ctx.plugins.take() else { return Ok(()) };
        res.headers.reserve(state.response_headers.len());
        for (name, value) in state.response_headers.drain(..) {
            res.headers.insert(name, value);
        }
        if !state.list.iter().any(|&c| self.phases(c).has(Phase::HeaderFilter)) {
            // The response's framing is the gateway's: a `Transfer-Encoding` a plugin sets is
            // dropped, as Kong's `kong.response.set_header` ignores it (the upstream's went with
            // the other hop-by-hop headers). Below, once every header_filter has run.
            res.headers.remove(hyper::header::TRANSFER_ENCODING);
            if state.list.iter().any(|&c| self.phases(c).has(Phase::BodyFilter) || self.phases(c).has(Phase::Log)) {
                state.response = Some(ResponseHandle { status: res.status.as_u16(), headers: res.headers.clone() });
            }
            ctx.plugins = Some(state);
            return Ok(());
        }
        let mut request = state.request.take().unwrap_or_default();
        let mut response = ResponseHandle { status: res.status.as_u16(), headers: std::mem::take(&mut res.headers) };
        let mut call = self.call_context(ctx);
        let mut outcome = Ok(());
        for at in 0..state.list.len() {
            let c = &self.entries[state.list[at].0];
            if !c.configured.phases.has(Phase::HeaderFilter) {
                continue;
            }
            call.entity = Some(c.entity);
            call.body_passed = Some(false);
            let run = |i: &mut PluginInstance| i.header_filter(&mut request, &mut response);
            let done = if c.configured.phases.has(Phase::BodyFilter) {
                let slot = state.pinned(at);
                let done = c.configured.call_in(slot, Phase::HeaderFilter, &mut call, run);
                if call.body_passed == Some(true) {
                    // No body_filter call will need this instance: back to the pool now.
                    if let Some(instance) = slot.take() {
                        c.configured.put(instance);
                    }
                    state.body_passed.push(at);
                }
                done
            } else {
                c.configured.call(Phase::HeaderFilter, &mut call, run)
            };
            call.body_passed = None;
            for (name, value) in call.response_headers.drain(..) {
                response.headers.insert(name, value);
            }
            if let Err(e) = done {
                outcome = Err(e);
                break;
            }
        }
        ctx.shared = std::mem::take(&mut call.shared);
        res.headers = response.headers;
        // As above: the framing stays the gateway's.
        res.headers.remove(hyper::header::TRANSFER_ENCODING);
        if let Ok(status) = StatusCode::from_u16(response.status) {
            res.status = status;
        }
        let later = state.list.iter().any(|&c| self.phases(c).has(Phase::BodyFilter) || self.phases(c).has(Phase::Log));
        if later {
            state.response = Some(ResponseHandle { status: res.status.as_u16(), headers: res.headers.clone() });
        }
        state.request = Some(request);
        ctx.plugins = Some(state);
        outcome
    }

    fn body_filter(&self, ctx: &mut RequestContext, chunk: &mut Bytes, eof: bool) -> Result<(), PhaseError> {
        let Some(mut state) = ctx.plugins.take() else { return Ok(()) };
        let mut response = state.response.take().unwrap_or_default();
        let mut call = CallContext { head_sent: true, ..self.call_context(ctx) };
        let mut outcome = Ok(());
        for at in 0..state.list.len() {
            let c = &self.entries[state.list[at].0];
            if !c.configured.phases.has(Phase::BodyFilter) || state.body_passed.contains(&at) {
                continue;
            }
            call.entity = Some(c.entity);
            let slot = state.pinned(at);
            let done =
                c.configured.call_in(slot, Phase::BodyFilter, &mut call, |i| i.body_filter(&mut response, chunk, eof));
            if eof && let Some(instance) = slot.take() {
                c.configured.put(instance);
            }
            match done {
                Ok(out) => *chunk = Bytes::from(out),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        ctx.shared = std::mem::take(&mut call.shared);
        state.response = Some(response);
        ctx.plugins = Some(state);
        outcome
    }

    fn log(&self, ctx: &mut RequestContext) {
        let Some(mut state) = ctx.plugins.take() else { return };
        let mut request = state.request.take().unwrap_or_default();
        let mut response = state.response.take().unwrap_or_else(|| ResponseHandle {
            status: ctx.status.map_or(0, |s| s.as_u16()),
            headers: HeaderMap::new(),
        });
        let mut call = CallContext { head_sent: true, ..self.call_context(ctx) };
        for c in state.list.iter().map(|r| &self.entries[r.0]).filter(|c| c.configured.phases.has(Phase::Log)) {
            call.entity = Some(c.entity);
            if let Err(error) = c.configured.call(Phase::Log, &mut call, |i| i.log(&mut request, &mut response)) {
                let route = ctx.route().map(|r| r.name.clone().unwrap_or_else(|| r.id.to_string()));
                if error.fault == Fault::Unavailable {
                    tracing::debug!(route = route.as_deref().unwrap_or("none"), %error, "log phase skipped");
                } else {
                    tracing::error!(route = route.as_deref().unwrap_or("none"), %error, "a plugin failed in log");
                }
            }
        }
        ctx.shared = std::mem::take(&mut call.shared);
    }
}

/// `http` or `https` as the client spoke to the gateway; `grpc`/`grpcs` for gRPC requests.
fn request_protocol(ctx: &RequestContext, headers: &HeaderMap) -> PluginProtocol {
    let grpc = headers.get(hyper::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    match (ctx.conn.tls.is_some(), grpc) {
        (false, false) => PluginProtocol::Http,
        (true, false) => PluginProtocol::Https,
        (false, true) => PluginProtocol::Grpc,
        (true, true) => PluginProtocol::Grpcs,
    }
}

/// The request as plugins see it; its headers are moved out of `req` until [`restore`].
fn request_handle(ctx: &RequestContext, req: &mut request::Parts) -> RequestHandle {
    let view = request_view(ctx, req);
    RequestHandle { headers: std::mem::take(&mut req.headers), ..view }
}

/// The request as plugins see it, without its headers.
fn request_view(ctx: &RequestContext, req: &request::Parts) -> RequestHandle {
    let host = crate::proxy::forwarding::request_host(&req.uri, &req.headers, req.version).unwrap_or_default();
    RequestHandle {
        method: req.method.clone(),
        scheme: if ctx.conn.tls.is_some() { "https" } else { "http" },
        host: without_port(host),
        port: ctx.conn.local.port(),
        path: req.uri.path().to_string(),
        query: req.uri.query().unwrap_or_default().to_string(),
        headers: hyper::HeaderMap::new(),
        client_ip: super::plugin::ClientIp::Ip(ctx.client_ip.unwrap_or_else(|| ctx.conn.peer.ip())),
        body: ctx.body.clone(),
        new_body: ctx.body_replacement.clone(),
        body_settable: true,
        host_set: false,
    }
}

/// Puts what the plugins left back into `req`: headers always, method, path and query when changed.
fn restore(handle: &mut RequestHandle, req: &mut request::Parts) -> Result<(), String> {
    req.headers = std::mem::take(&mut handle.headers);
    if handle.method != req.method {
        req.method = handle.method.clone();
    }
    if handle.path != req.uri.path() || handle.query != req.uri.query().unwrap_or_default() {
        let target =
            if handle.query.is_empty() { handle.path.clone() } else { format!("{}?{}", handle.path, handle.query) };
        let mut parts = req.uri.clone().into_parts();
        parts.path_and_query = Some(target.parse().map_err(|e| format!("{target:?}: {e}"))?);
        req.uri = hyper::Uri::from_parts(parts).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `host` without its port, in its own allocation.
fn without_port(mut host: String) -> String {
    let range = {
        let name = strip_port(&host);
        let start = name.as_ptr() as usize - host.as_ptr() as usize;
        start..start + name.len()
    };
    host.truncate(range.end);
    host.drain(..range.start);
    host
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A plugin's own response, checked.
fn exit_of(exit: super::plugin::gateway::api::types::Exit) -> Result<Exit, String> {
    let status = StatusCode::from_u16(exit.status).map_err(|_| format!("{} is not an HTTP status", exit.status))?;
    let mut headers = HeaderMap::new();
    for (name, value) in exit.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| format!("the value of {name} is not a header value"))?;
        headers.append(name, value);
    }
    Ok(Exit { status, headers, body: Bytes::from(exit.body) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_off_hosts() {
        for host in ["example.com:8000", "example.com", "[::1]:8000", "[::1]", "", "[", "a:b:c", "[::1]x"] {
            assert_eq!(without_port(host.to_string()), strip_port(host), "{host}");
        }
        assert_eq!(strip_port("example.com:8000"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8000"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
    }

    #[test]
    fn every_scope_pattern_has_one_level_and_they_go_from_most_to_least_specific() {
        let id = Some(Uuid::nil());
        for (i, level) in LEVELS.iter().enumerate() {
            let scope =
                (level.0.then_some(Uuid::nil()), level.1.then_some(Uuid::nil()), level.2.then_some(Uuid::nil()));
            assert_eq!(level_of(&scope), i);
        }
        let named = |l: &(bool, bool, bool)| u8::from(l.0) + u8::from(l.1) + u8::from(l.2);
        assert!(LEVELS.windows(2).all(|w| named(&w[0]) >= named(&w[1])));
        assert_eq!(level_of(&(id, None, None)), 4, "consumer alone outranks route alone (Kong)");
    }
}
