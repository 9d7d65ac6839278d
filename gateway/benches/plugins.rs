//! The cost of one plugin call (`access`) through the plugin host: the request handed over as a
//! resource, the call under its CPU budget, the request taken back. For the no-op plugin (the
//! host's floor), the template plugin (one header set), correlation-id (an id made and set), and
//! Kong's everyday pair: key-auth (a key found, its credential and consumer looked up, five
//! upstream headers set) and rate-limiting (a counter per period, its headers kept for later).
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
        method: "GET".into(),
        scheme: "http".into(),
        host: "api.example.com".into(),
        port: 8000,
        path: "/items".into(),
        query: String::new(),
        headers,
        client_ip: "127.0.0.1".into(),
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
    let directory = Arc::new(Directory::new(&gateway::entities::parse_value(&doc).unwrap()));
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
            directory: Some(directory.clone()),
            entity: Some(Arc::new(PluginEntity { id: "e".into(), route: None, service: None, consumer: None })),
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
            })
        });
    }
    group.finish();
}

criterion_group!(benches, access);
criterion_main!(benches);
