//! What plugins cost, without the network in the way:
//!
//! - `plugin-access`: one `access` call through the plugin host (the request handed over as a
//!   resource, the call under its CPU budget, the request taken back), for the no-op plugin (the
//!   host's floor), the template plugin (one header set), correlation-id (an id made and set), and
//!   Kong's everyday pair: key-auth (a key found, its credential and consumer looked up, Kong's
//!   upstream headers set) and rate-limiting (a counter per period, its headers set ahead);
//! - `plugin-request`: every plugin phase of one proxied request through a configuration's runner,
//!   for routes with no plugin, the no-op plugin, key-auth, rate-limiting (and with
//!   `hide_client_headers`: what its headers cost), and both.
//!
//! `cargo bench -p gateway --bench plugins`; `bench/plugins.sh` runs it and writes the results to
//! docs/benchmarks.md. The plugins come from the components' target dir (gateway/build.rs builds
//! them).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::wasm::WasmRuntime;
use gateway::wasm::plugin::{
    CallContext, Directory, LoadedPlugin, MEMORY_LIMIT, NodeShared, Phase, PluginEntity, RequestHandle,
};

// The binary's allocator, so that allocations cost what they cost in the gateway.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn component(name: &str) -> Vec<u8> {
    if let Some((_, wasm)) = gateway::wasm::bundled::PLUGINS.iter().find(|(n, _)| *n == name) {
        return wasm.to_vec();
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).expect("a cargo target dir");
    std::fs::read(target.join(format!("wasm-plugins/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")))).unwrap()
}

fn request() -> RequestHandle {
    let mut headers = hyper::HeaderMap::new();
    for (name, value) in [("host", "api.example.com"), ("user-agent", "wrk"), ("accept", "*/*")] {
        headers.insert(name, value.parse().unwrap());
    }
    RequestHandle {
        method: hyper::Method::GET,
        scheme: "http",
        host: "api.example.com".into(),
        port: 8000,
        path: "/items".into(),
        query: String::new(),
        headers,
        client_ip: gateway::wasm::plugin::ClientIp::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
        body_settable: true,
        ..RequestHandle::default()
    }
}

fn access(c: &mut Criterion) {
    let runtime = WasmRuntime::new().unwrap();
    let mut group = c.benchmark_group("plugin-access");
    let doc = serde_json::json!({
        "_format_version": "3.0",
        "consumers": [{"username": "bench", "keyauth_credentials": [{"key": "bench-key"}]}],
    });
    let entity = PluginEntity { id: "e".into(), route: None, service: None, consumer: None };
    let directory =
        Arc::new(Directory::new(&gateway::entities::parse_value(&doc).unwrap()).with_entities(vec![entity]));
    let plugins = [
        ("noop", "{}"),
        ("template", "{}"),
        ("correlation-id", "{}"),
        ("key-auth", "{}"),
        ("rate-limiting", r#"{"hour": 1000000000, "limit_by": "ip"}"#),
    ];
    for (name, config) in plugins {
        let plugin = LoadedPlugin::load(&runtime, name, &component(name)).unwrap();
        let config = plugin.check_config(config).unwrap().unwrap();
        let shared = Arc::new(NodeShared::default());
        let mut instance = plugin.configure(&config, Duration::from_millis(100), MEMORY_LIMIT, shared).unwrap();
        instance.set_call(CallContext {
            directory: Some(Arc::new(gateway::wasm::plugin::LocalDirectory(directory.clone()))),
            entity: Some(0),
            ..CallContext::default()
        });
        let mut req = request();
        req.headers.insert("apikey", "bench-key".parse().unwrap());
        group.bench_function(name, |b| {
            b.iter(|| {
                let flow = instance.request_phase(Phase::Access, &mut req).unwrap();
                black_box(flow);
                // correlation-id keeps a header it finds: start each call from the client's request.
                req.headers.remove("kong-request-id");
                // What rate-limiting sets ahead goes on the response (here: nowhere).
                instance.call_mut().response_headers.clear();
            })
        });
    }
    group.finish();
}

/// Evicts the caches: writes a line of every 64 bytes of a buffer larger than this machine's
/// per-core caches (8 MiB), as a proxied request's network and HTTP work does between two plugin
/// calls.
fn evict_caches() {
    touch(8 << 20, 64);
}

/// Evicts the TLBs and little else: touches a byte of each of 4096 pages (16 MiB), one cache line
/// per page.
fn evict_pages() {
    touch(16 << 20, 4096);
}

/// Writes a byte every `stride` bytes of the first `len` bytes of this thread's 16 MiB buffer.
fn touch(len: usize, stride: usize) {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![1; 16 << 20]);
    }
    BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        for i in (0..len.min(b.len())).step_by(stride) {
            b[i] = b[i].wrapping_add(1);
        }
    });
}

/// Every plugin phase of one proxied request, as the pipeline runs them (`access`, then
/// `header_filter`, `body_filter` and `log` when wanted) on a configuration version's runner:
/// what plugins cost a request beyond the proxying itself. The route with no plugin is the floor
/// (the runner has nothing to do for it).
fn request_phases(c: &mut Criterion) {
    use gateway::proxy::context::RequestContext;
    use gateway::proxy::phases::{Flow, Phase as P};

    let runtime = WasmRuntime::new().unwrap();
    let enabled: Vec<String> =
        ["noop", "key-auth", "rate-limiting", "pair-auth", "pair-limit", "pair-fused"].map(String::from).to_vec();
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).expect("a cargo target dir");
    // Plugins load from `<name>.wasm`; cargo names the artifacts with `_` for `-`.
    let built = target.join("wasm-plugins/wasm32-wasip2/release");
    let fixtures = tempfile::tempdir().unwrap();
    for name in ["noop", "pair-auth", "pair-limit", "pair-fused"] {
        let artifact = built.join(format!("{}.wasm", name.replace('-', "_")));
        std::os::unix::fs::symlink(artifact, fixtures.path().join(format!("{name}.wasm"))).unwrap();
    }
    let set = gateway::wasm::plugin_set::PluginSet::load(
        &runtime,
        &enabled,
        Some(fixtures.path()),
        (Default::default(), 1),
        Default::default(),
    )
    .unwrap();
    let doc = serde_json::json!({
        "_format_version": "3.0",
        "services": [{"name": "s", "url": "http://127.0.0.1:9", "routes": [
            {"name": "none", "paths": ["/none"]},
            {"name": "noop", "paths": ["/noop"], "plugins": [{"name": "noop"}]},
            {"name": "noop-calls", "paths": ["/noop-calls"], "plugins": [{"name": "noop", "config": {"host_calls": true}}]},
            {"name": "ka", "paths": ["/ka"], "plugins": [{"name": "key-auth"}]},
            {"name": "rl", "paths": ["/rl"], "plugins": [
                {"name": "rate-limiting", "config": {"hour": 1000000000, "limit_by": "ip"}}]},
            {"name": "rl-quiet", "paths": ["/rl-quiet"], "plugins": [
                {"name": "rate-limiting", "config": {"hour": 1000000000, "limit_by": "ip", "hide_client_headers": true}}]},
            {"name": "ka-rl", "paths": ["/ka-rl"], "plugins": [
                {"name": "key-auth"},
                {"name": "rate-limiting", "config": {"hour": 1000000000, "limit_by": "consumer"}}]},
            // The pair cut down to its common path (plugins/testing/pair-shared): the same work
            // in two components, and in one.
            {"name": "split", "paths": ["/split"], "plugins": [{"name": "pair-auth"}, {"name": "pair-limit"}]},
            {"name": "fused", "paths": ["/fused"], "plugins": [{"name": "pair-fused"}]},
        ]}],
        "consumers": [{"username": "bench", "keyauth_credentials": [{"key": "bench-key"}]}],
    });
    let config = gateway::entities::declarative::parse_value_with(&doc, &set.registry()).unwrap();
    let runner = set.runner(&config).unwrap();
    let router =
        gateway::wasm::router::CompiledRouter::new(&runtime, "router", gateway::wasm::bundled::ROUTER).unwrap();
    let tls = gateway::tls::trust::UpstreamTls::new(&[], None).unwrap();
    let mut snapshot = gateway::proxy::Snapshot::build(config, &router, 1, &tls, &Default::default()).unwrap();
    snapshot.phases = Some(runner.clone());
    let snapshot = Arc::new(snapshot);
    let conn = gateway::server::Conn {
        peer: "127.0.0.1:40000".parse().unwrap(),
        local: "127.0.0.1:8000".parse().unwrap(),
        tls: None,
        activity: Arc::default(),
    };
    let one = |name: &str, route: usize| {
        let mut ctx = RequestContext::new(conn.clone(), snapshot.clone());
        ctx.client_ip = Some(conn.peer.ip());
        ctx.route = Some(route);
        let (mut req, ()) = hyper::Request::get(format!("http://api.example.com/{name}"))
            .header("host", "api.example.com")
            .header("user-agent", "wrk")
            .header("apikey", "bench-key")
            .body(())
            .unwrap()
            .into_parts();
        if runner.wants(P::Access, &ctx) {
            assert!(matches!(runner.access(&mut ctx, &mut req).unwrap(), Flow::Continue));
        }
        let (mut res, ()) = hyper::Response::builder()
            .header("content-length", "2")
            .header("content-type", "text/plain")
            .body(())
            .unwrap()
            .into_parts();
        if runner.wants(P::HeaderFilter, &ctx) {
            runner.header_filter(&mut ctx, &mut res).unwrap();
        }
        if runner.wants(P::BodyFilter, &ctx) {
            let mut chunk = hyper::body::Bytes::from_static(b"ok");
            runner.body_filter(&mut ctx, &mut chunk, true).unwrap();
        }
        if runner.wants(P::Log, &ctx) {
            runner.log(&mut ctx);
        }
        black_box((req, res, ctx));
    };
    // A fixed number of requests on one route, timed, then out (A/B comparisons of two builds).
    if let (Ok(name), Ok(count)) = (std::env::var("PLUGIN_BENCH_ROUTE"), std::env::var("PLUGIN_BENCH_COUNT")) {
        let route = snapshot.routes.iter().position(|(r, _)| r.name.as_deref() == Some(name.as_str())).unwrap();
        let count = count.parse::<u32>().unwrap();
        for _ in 0..count / 10 {
            one(&name, route);
        }
        // PLUGIN_BENCH_EVICT=caches (8 MiB written) or pages (a byte of each of 4096 pages: the
        // TLBs, little of the caches) before each request, untimed.
        let evict: Option<fn()> = match std::env::var("PLUGIN_BENCH_EVICT").as_deref() {
            Ok("caches") => Some(evict_caches),
            Ok("pages") => Some(evict_pages),
            _ => None,
        };
        let mut elapsed = std::time::Duration::ZERO;
        match evict {
            None => {
                let start = std::time::Instant::now();
                for _ in 0..count {
                    one(&name, route);
                }
                elapsed = start.elapsed();
            }
            Some(evict) => {
                for _ in 0..count {
                    evict();
                    let start = std::time::Instant::now();
                    one(&name, route);
                    elapsed += start.elapsed();
                }
            }
        }
        println!("{name} {:.0}", elapsed.as_nanos() as f64 / f64::from(count));
        std::process::exit(0);
    }
    // Hot: request after request, everything in the caches. Cold: the caches evicted before each
    // request (not timed), as requests through the network find them.
    for (group, cold) in [("plugin-request", false), ("plugin-request-cold", true)] {
        let mut group = c.benchmark_group(group);
        for name in ["none", "noop", "ka", "rl", "ka-rl"] {
            let route = snapshot.routes.iter().position(|(r, _)| r.name.as_deref() == Some(name)).unwrap();
            group.bench_function(name, |b| {
                if cold {
                    b.iter_batched(evict_caches, |()| one(name, route), criterion::BatchSize::PerIteration);
                } else {
                    b.iter(|| one(name, route));
                }
            });
        }
        group.finish();
    }
}

criterion_group!(benches, access, request_phases);
criterion_main!(benches);
