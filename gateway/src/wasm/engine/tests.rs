use std::time::Instant;

use super::*;
use crate::wasm::plugin::{LoadedPlugin, MEMORY_LIMIT as PLUGIN_MEMORY, NodeShared, PluginComponent};
use crate::wasm::router::{CompiledRouter, MEMORY_LIMIT as ROUTER_MEMORY, PathHandling, RouteSpec};
use crate::wasm::sandbox::Sandbox;
use crate::wasm::{WasmRuntime, bundled};
use wasmtime::component::{HasSelf, InstancePre};

/// The template plugin gateway/build.rs builds beside the bundled components.
fn template_wasm() -> Vec<u8> {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).unwrap();
    std::fs::read(target.join("wasm-plugins/wasm32-wasip2/release/template.wasm")).unwrap()
}

fn one_route() -> Vec<RouteSpec> {
    vec![RouteSpec {
        methods: vec![],
        hosts: vec![],
        paths: vec!["/".into()],
        headers: vec![],
        snis: vec![],
        regex_priority: 0,
        strip_path: true,
        path_handling: PathHandling::V0,
        service_path: None,
    }]
}

/// Bare instantiation: a store, the instance, dropping both.
fn instantiate(engine: &Engine, pre: &InstancePre<Sandbox>, memory: usize) {
    let mut store = Store::new(engine, Sandbox::with_memory_limit(memory));
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(10);
    pre.instantiate(&mut store).unwrap();
}

type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// What each way of making an instance costs, µs per instance (the best of `rounds` batches).
fn measure(allocation: Allocation, rounds: usize, batch: usize) -> Vec<(&'static str, f64)> {
    let runtime = WasmRuntime::with_allocation(allocation).unwrap();
    let engine = runtime.engine().clone();
    let router_component = runtime.compile("router", bundled::ROUTER).unwrap();
    let router_pre = Sandbox::linker(&engine).unwrap().instantiate_pre(&router_component).unwrap();
    let router = CompiledRouter::new(&runtime, "router", bundled::ROUTER).unwrap();
    let wasm = template_wasm();
    let plugin_component = runtime.compile("template", &wasm).unwrap();
    let mut linker = Sandbox::linker(&engine).unwrap();
    PluginComponent::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |s| s).unwrap();
    let plugin_pre = linker.instantiate_pre(&plugin_component).unwrap();
    let plugin = LoadedPlugin::load(&runtime, "template", &wasm).unwrap();
    let shared = Arc::new(NodeShared::default());
    let config = r#"{"header_name":"X-Test","header_value":"yes"}"#;

    let mut cases: Vec<Case> = vec![
        ("router: instantiate", Box::new(|| instantiate(&engine, &router_pre, ROUTER_MEMORY))),
        ("router: instantiate + load 1 route", Box::new(|| drop(router.load(one_route(), 1).unwrap()))),
        ("template: instantiate", Box::new(|| instantiate(&engine, &plugin_pre, PLUGIN_MEMORY))),
        (
            "template: instantiate + configure",
            Box::new(|| {
                drop(plugin.configure(config, Duration::from_millis(100), PLUGIN_MEMORY, shared.clone()).unwrap())
            }),
        ),
    ];
    let mut best = vec![f64::MAX; cases.len()];
    for _ in 0..rounds {
        for (i, (_, case)) in cases.iter_mut().enumerate() {
            let started = Instant::now();
            for _ in 0..batch {
                case();
            }
            best[i] = best[i].min(started.elapsed().as_secs_f64() * 1e6 / batch as f64);
        }
    }
    cases.iter().map(|(name, _)| *name).zip(best).collect()
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix(field)).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// `cargo test --release -p gateway --lib wasm::engine::tests::instantiation -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: prints numbers, asserts nothing"]
fn instantiation_on_demand_vs_pooling() {
    let (vm, rss) = (status_kib("VmSize:"), status_kib("VmRSS:"));
    let started = Instant::now();
    let pooled = WasmRuntime::with_allocation(Allocation::Pooling { slots: 1000 }).unwrap();
    println!(
        "pooling with 1000 slots: engine made in {:.1} ms, {:.1} GiB of address space reserved, RSS +{} KiB",
        started.elapsed().as_secs_f64() * 1000.0,
        (status_kib("VmSize:") - vm) as f64 / (1 << 20) as f64,
        status_kib("VmRSS:").saturating_sub(rss)
    );
    drop(pooled);
    for _ in 0..2 {
        for allocation in [Allocation::OnDemand, Allocation::Pooling { slots: 1000 }] {
            for (name, us) in measure(allocation, 5, 200) {
                println!("{allocation:?}\t{name}\t{us:.1} µs");
            }
        }
    }
}

#[test]
fn traps_are_counted_per_component_and_listed_from_their_load() {
    let traps = Traps::default();
    traps.register("router");
    traps.register("hostile");
    let shared = traps.clone();
    shared.record("hostile");
    shared.record("hostile");
    traps.register("hostile");
    assert_eq!(traps.counts(), [("hostile".to_string(), 2), ("router".to_string(), 0)]);
}
