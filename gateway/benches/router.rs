//! The cost of one route decision through the router component, at 1, 100 and 10,000 routes,
//! against the same decision made by `router-core` natively in the same run (the component's
//! sandbox and the copy of the request across it are the difference).
//!
//! `cargo bench -p gateway --bench router`; `bench/router.sh` runs it and writes the results to
//! docs/benchmarks.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gateway::wasm::router::{CompiledRouter, HeaderRule, PathHandling, Request, RouteSpec};
use gateway::wasm::{WasmRuntime, bundled};

/// A table like a large Kong installation's: per route a host (a tenth of them wildcards), a
/// prefix path, and for one route in ten a method list, a header or a regex path.
fn table(n: usize) -> Vec<RouteSpec> {
    (0..n)
        .map(|i| RouteSpec {
            methods: if i % 10 == 3 { vec!["GET".into(), "POST".into()] } else { Vec::new() },
            hosts: vec![if i % 10 == 7 {
                format!("*.tenant{i}.example.com")
            } else {
                format!("api{}.example.com", i % 100)
            }],
            paths: vec![if i % 10 == 5 { format!("~/svc{i}/items/(?<id>\\d+)$") } else { format!("/svc{i}") }],
            headers: if i % 10 == 1 {
                vec![HeaderRule { name: "x-version".into(), values: vec!["v1".into(), "v2".into()] }]
            } else {
                Vec::new()
            },
            snis: Vec::new(),
            regex_priority: 0,
            strip_path: true,
            path_handling: PathHandling::V0,
            service_path: None,
        })
        .collect()
}

fn native(spec: &RouteSpec) -> router_core::RouteSpec {
    router_core::RouteSpec {
        methods: spec.methods.clone(),
        hosts: spec.hosts.clone(),
        paths: spec.paths.clone(),
        headers: spec.headers.iter().map(|h| (h.name.clone(), h.values.clone())).collect(),
        snis: spec.snis.clone(),
        regex_priority: spec.regex_priority,
        strip_path: spec.strip_path,
        path_handling: router_core::PathHandling::V0,
        service_path: spec.service_path.clone(),
    }
}

/// A request for the last route of the table that has a plain prefix (the worst place to be in a
/// table scanned in order; an index should not care).
fn request(n: usize) -> Request {
    let i = (0..n).rev().find(|i| i % 10 == 0 || i % 10 == 2).unwrap_or(0);
    Request {
        method: "GET".into(),
        host: format!("api{}.example.com", i % 100),
        port: 8000,
        path: format!("/svc{i}/orders/42"),
        headers: vec![("x-version".into(), b"v1".to_vec())],
        sni: None,
    }
}

fn bench(c: &mut Criterion) {
    let runtime = WasmRuntime::new().expect("wasm engine");
    let component = CompiledRouter::new(&runtime, "router", bundled::ROUTER).expect("router component");
    let mut group = c.benchmark_group("route");
    for n in [1, 100, 10_000] {
        let routes = table(n);
        let req = request(n);
        let core = router_core::Router::new(&routes.iter().map(native).collect::<Vec<_>>()).expect("native table");
        let pool = component.load(routes.clone(), 1).expect("loading the table");
        let matched = pool.route(&req).expect("a route call").expect("a match");
        assert_eq!(matched.upstream_path, "/orders/42");

        let native_req = router_core::Request {
            method: &req.method,
            host: &req.host,
            port: req.port,
            path: &req.path,
            headers: &req.headers,
            sni: None,
        };
        assert_eq!(core.route(&native_req).map(|m| m.route), Some(matched.route));

        group.bench_with_input(BenchmarkId::new("component", n), &req, |b, req| {
            b.iter(|| black_box(pool.route(black_box(req)).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("native", n), &native_req, |b, req| {
            b.iter(|| black_box(core.route(black_box(req))))
        });
    }
    group.finish();
}

/// Loading a table: what a configuration change costs per router instance.
fn load(c: &mut Criterion) {
    let runtime = WasmRuntime::new().expect("wasm engine");
    let component = CompiledRouter::new(&runtime, "router", bundled::ROUTER).expect("router component");
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    let routes = table(10_000);
    let natives: Vec<router_core::RouteSpec> = routes.iter().map(native).collect();
    group.bench_function(BenchmarkId::new("component", 10_000), |b| {
        b.iter(|| black_box(component.load(routes.clone(), 1).expect("loads")))
    });
    group.bench_function(BenchmarkId::new("native", 10_000), |b| {
        b.iter(|| black_box(router_core::Router::new(&natives).expect("loads")))
    });
    group.finish();
}

criterion_group!(benches, bench, load);
criterion_main!(benches);
