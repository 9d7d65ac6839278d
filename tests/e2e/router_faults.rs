//! A router component that misbehaves fails only the request it was deciding: the request gets
//! Kong's 500, the instance is rebuilt, and the next request is routed as usual.

use std::net::SocketAddr;

use gateway_tests::{DEADLINE, DbLess, EchoServer, Gateway, free_port, http_get, http_request, wasm_fixture};

fn node_with_trap_router() -> (EchoServer, DbLess, SocketAddr) {
    let echo = EchoServer::start();
    let trap = wasm_fixture("trap-router");
    let status = free_port();
    let node = DbLess::start(
        &format!(
            "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
            echo.addr
        ),
        &[format!("router_component = {}", trap.display()), format!("status_listen = 127.0.0.1:{status}")],
    );
    (echo, node, SocketAddr::from(([127, 0, 0, 1], status)))
}

/// The router's line of `gateway_wasm_traps_total` on the status listener's `/metrics`.
fn router_traps(status: SocketAddr) -> f64 {
    let metrics = http_get(status, "/metrics").unwrap().body;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("gateway_wasm_traps_total{") && l.contains("trap"))
        .unwrap_or_else(|| panic!("the router's traps are listed: {metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn assert_routed(node: &DbLess, path: &str) {
    let reply = http_request(node.proxy, "GET", path, &[]).unwrap();
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    assert_eq!(reply.json()["path"], path);
}

#[test]
fn a_trap_in_the_router_fails_only_its_own_request() {
    let (_echo, mut node, status) = node_with_trap_router();
    assert!(node.gateway.log().contains("router component loaded"), "{}", node.gateway.log());
    assert_routed(&node, "/before");
    assert_eq!(router_traps(status), 0.0);

    let reply = http_request(node.proxy, "GET", "/trap", &[("Accept", "application/json")]).unwrap();
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(reply.json()["message"], "An unexpected error occurred");
    // The component's own panic message is part of the report.
    node.gateway.wait_for_log("asked to trap");
    assert!(node.gateway.log().contains("router component trapped"), "{}", node.gateway.log());

    // The trapped instance is rebuilt in the background, without any request asking for it (a
    // request never waits for a rebuild)…
    node.gateway.wait_for_log("router instance rebuilt");
    // …and every instance routes again, however many there are.
    for i in 0..32 {
        assert_routed(&node, &format!("/after/{i}"));
    }
    assert_eq!(router_traps(status), 1.0, "one trap, counted once");
}

#[test]
fn a_router_call_that_never_returns_is_interrupted() {
    let (_echo, node, status) = node_with_trap_router();
    let reply = http_request(node.proxy, "GET", "/spin", &[]).unwrap();
    assert_eq!(reply.status, 500, "{reply:?}");
    for i in 0..4 {
        assert_routed(&node, &format!("/after/{i}"));
    }
    assert_eq!(router_traps(status), 1.0, "the deadline counts as a trap");
}

#[test]
fn a_router_component_that_is_not_a_component_stops_the_start() {
    let dir =
        DbLess::dir(gateway_tests::free_port(), "_format_version: '3.0'\n", &["router_component = kong.yml".into()]);
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    assert_eq!(gateway.wait_exit(DEADLINE).code(), Some(1));
    let log = gateway.log();
    assert!(log.contains("kong.yml"), "names the file: {log}");
    assert!(log.contains("compil"), "says it could not compile it: {log}");

    let dir =
        DbLess::dir(gateway_tests::free_port(), "_format_version: '3.0'\n", &["router_component = nope.wasm".into()]);
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    assert_eq!(gateway.wait_exit(DEADLINE).code(), Some(1));
    assert!(gateway.log().contains("router_component = \"nope.wasm\": no such file"), "{}", gateway.log());
}
