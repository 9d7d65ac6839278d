//! The shared matching cases through the real, bundled router component.

use std::sync::Arc;

use router_core::cases;

use super::*;
use crate::wasm::bundled;

fn component() -> Arc<CompiledRouter> {
    let runtime = WasmRuntime::new().unwrap();
    CompiledRouter::new(&runtime, "router", bundled::ROUTER).unwrap()
}

fn spec(r: &cases::CaseRoute, port: u16) -> RouteSpec {
    let s = r.spec(port);
    RouteSpec {
        methods: s.methods,
        hosts: s.hosts,
        paths: s.paths,
        headers: s.headers.into_iter().map(|(name, values)| HeaderRule { name, values }).collect(),
        snis: s.snis,
        regex_priority: s.regex_priority,
        strip_path: s.strip_path,
        path_handling: match s.path_handling {
            router_core::PathHandling::V0 => PathHandling::V0,
            router_core::PathHandling::V1 => PathHandling::V1,
        },
        service_path: s.service_path,
    }
}

#[test]
fn every_shared_case_through_the_component() {
    let component = component();
    let mut failures = Vec::new();
    for case in cases::load() {
        let port = case.port();
        let pool = component.load(case.routes.iter().map(|r| spec(r, port)).collect(), 1).unwrap();
        let headers = case
            .request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
            .filter(|(k, _)| pool.header_names().contains(k))
            .collect();
        let request = Request {
            method: case.request.method.clone(),
            host: case.request.host.clone(),
            port,
            path: case.request.path.clone(),
            headers,
            sni: case.request.sni.clone(),
        };
        let got = pool.route(&request).unwrap().map(|m| (m.route, m.upstream_path, m.captures));
        let wrong = cases::mismatches(&case, got);
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", case.name, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_bad_table_is_refused_with_every_error_not_a_trap() {
    let bad = RouteSpec {
        methods: vec![],
        hosts: vec!["a.*.b".into()],
        paths: vec!["~/(".into(), "nope".into()],
        headers: vec![],
        snis: vec![],
        regex_priority: 0,
        strip_path: true,
        path_handling: PathHandling::V0,
        service_path: None,
    };
    let Err(RouterLoadError::Refused(errors)) = component().load(vec![bad], 1) else { panic!("expected refusal") };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["hosts[0]", "paths[0]", "paths[1]"]);
}

#[test]
fn the_pool_asks_only_for_the_headers_its_routes_use() {
    let route = RouteSpec {
        methods: vec![],
        hosts: vec![],
        paths: vec![],
        headers: vec![HeaderRule { name: "X-Version".into(), values: vec!["1".into()] }],
        snis: vec![],
        regex_priority: 0,
        strip_path: true,
        path_handling: PathHandling::V0,
        service_path: None,
    };
    let pool = component().load(vec![route], 2).unwrap();
    assert_eq!(pool.header_names(), ["x-version"]);
}

/// Large tables load inside the sandbox: 10,000 routes, a tenth with regex paths, and 2,000 regexes
/// without a literal prefix (case-insensitive), which can only be screened by a regex set.
#[test]
fn large_route_tables_load_in_the_component() {
    let component = component();
    let route = |path: String| RouteSpec {
        methods: Vec::new(),
        hosts: Vec::new(),
        paths: vec![path],
        headers: Vec::new(),
        snis: Vec::new(),
        regex_priority: 0,
        strip_path: true,
        path_handling: PathHandling::V0,
        service_path: None,
    };
    let table: Vec<RouteSpec> = (0..10_000)
        .map(|i| route(if i % 10 == 5 { format!(r"~/svc{i}/items/(?<id>\d+)$") } else { format!("/svc{i}") }))
        .collect();
    let pool = component.load(table, 1).unwrap();
    let request = |path: &str| Request {
        method: "GET".into(),
        host: "x".into(),
        port: 80,
        path: path.into(),
        headers: Vec::new(),
        sni: None,
    };
    let hit = pool.route(&request("/svc9995/items/7")).unwrap().unwrap();
    assert_eq!((hit.route, hit.captures.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str())), (9995, Some("7")));

    let table: Vec<RouteSpec> = (0..2_000).map(|i| route(format!(r"~/(?i)v{i}/\w+/\d+$"))).collect();
    let pool = component.load(table, 1).unwrap();
    assert_eq!(pool.route(&request("/V1999/abc/12")).unwrap().unwrap().route, 1999);
}

/// A route call whose wall-clock deadline passes while it runs (as when a busy machine preempts the
/// thread) still completes: only CPU spent on the call counts against its budget.
#[test]
fn a_call_overtaken_by_wall_time_but_not_by_cpu_time_completes() {
    let component = component();
    let case = &cases::load()[0];
    let port = case.port();
    let pool = component.load(case.routes.iter().map(|r| spec(r, port)).collect(), 1).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (engine, stop) = (component.engine.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                engine.increment_epoch();
            }
        })
    };
    let request = Request {
        method: case.request.method.clone(),
        host: case.request.host.clone(),
        port,
        path: case.request.path.clone(),
        headers: Vec::new(),
        sni: case.request.sni.clone(),
    };
    let failed = (0..200).filter(|_| pool.route(&request).is_err()).count();
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    assert_eq!(failed, 0, "route calls failed only because the epoch raced past their deadline");
}
