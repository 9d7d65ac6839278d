//! A node compiles its components once: the next start loads them from `<prefix>/wasm-cache`, and a
//! cache entry that was damaged is ignored, compiled again and rewritten; the node starts and routes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gateway_tests::{DEADLINE, DbLess, EchoServer, Gateway, free_port, http_request};

const ROUTER_FROM_CACHE: &str = "component loaded from the compile cache component=router";
const ROUTER_COMPILED: &str = "component compiled and cached component=router";

fn start(dir: &Path) -> Gateway {
    // The cache in the node's own prefix (the default), not the one the other tests share.
    let mut gateway = Gateway::start(dir, &["-c", "kong.conf"], &[("KONG_WASM_CACHE_PATH", "")]);
    gateway.wait_for_log("gateway started");
    gateway
}

fn stop(mut gateway: Gateway) {
    gateway.signal("TERM");
    assert!(gateway.wait_exit(DEADLINE).success(), "{}", gateway.log());
}

fn assert_routes(port: u16) {
    let reply = http_request(([127, 0, 0, 1], port).into(), "GET", "/cached", &[]).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["path"], "/cached");
}

/// The cache's entries.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("servroot/wasm-cache"))
        .expect("the node made its cache directory")
        .map(|e| e.unwrap().path())
        .collect()
}

/// The router's entry, as the node logged it when it compiled it.
fn router_entry(log: &str) -> PathBuf {
    let line = log.lines().find(|l| l.contains(ROUTER_COMPILED)).expect("the router was compiled");
    let file = line.split_whitespace().find_map(|w| w.strip_prefix("file=")).expect("the log names the file");
    PathBuf::from(file)
}

/// A DB-less node's directory (its upstream running), routing everything to the upstream.
fn node_dir() -> (EchoServer, u16, tempfile::TempDir) {
    let echo = EchoServer::start();
    let port = free_port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
        echo.addr
    );
    let dir = DbLess::dir(port, &yaml, &[]);
    (echo, port, dir)
}

#[test]
fn a_second_start_loads_the_router_from_the_cache_and_a_damaged_entry_is_rebuilt() {
    let (_echo, port, dir) = node_dir();

    let first = start(dir.path());
    // A first start compiles in a child process (its log lines share the node's stderr), then
    // the node loads every component from the cache the child filled.
    let log = first.log();
    assert!(log.contains("first start: compiling the components in a child process"), "{log}");
    assert!(log.contains(ROUTER_COMPILED), "{log}");
    assert!(log.contains(ROUTER_FROM_CACHE), "the node loads what the child compiled: {log}");
    assert_eq!(
        log.matches("component compiled and cached").count(),
        log.matches("component loaded from the compile cache").count(),
        "each component compiled once, by the child, and loaded by the node: {log}"
    );
    let router = router_entry(&first.log());
    assert_routes(port);
    stop(first);
    let cache = dir.path().join("servroot/wasm-cache");
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
    let files = entries(dir.path());
    assert_eq!(
        files.len(),
        16,
        "the router, the health probe, the analytics component and the thirteen bundled plugins: {files:?}"
    );
    assert!(files.contains(&router), "{files:?}");
    for file in &files {
        assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o600, "{}", file.display());
    }

    let second = start(dir.path());
    let log = second.log();
    assert!(log.contains(ROUTER_FROM_CACHE), "{log}");
    assert!(!log.contains("component compiled"), "nothing is compiled again: {log}");
    assert!(!log.contains("first start"), "{log}");
    assert_routes(port);
    stop(second);

    // Damage the router's entry in its compiled code: the node must notice, not run it.
    let router = &router;
    let mut bytes = std::fs::read(router).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(router, &bytes).unwrap();

    let third = start(dir.path());
    let log = third.log();
    assert!(log.contains("ignoring a compile cache entry"), "{log}");
    assert!(log.contains("does not match its digest"), "says why: {log}");
    assert!(log.contains(ROUTER_COMPILED), "{log}");
    assert!(!log.contains(ROUTER_FROM_CACHE), "{log}");
    assert_routes(port);
    stop(third);
    assert_ne!(std::fs::read(router).unwrap(), bytes, "the entry was rewritten");

    // Truncated (a full disk, a crash): the same.
    std::fs::write(router, &bytes[..middle]).unwrap();
    let fourth = start(dir.path());
    assert!(fourth.log().contains("it is truncated"), "{}", fourth.log());
    assert_routes(port);
    stop(fourth);

    let fifth = start(dir.path());
    assert!(fifth.log().contains(ROUTER_FROM_CACHE), "{}", fifth.log());
    assert_routes(port);
    stop(fifth);
}

#[test]
fn gateway_precompile_fills_the_cache_so_the_first_start_compiles_nothing() {
    let (_echo, port, dir) = node_dir();
    let out = gateway_tests::run(dir.path(), &["precompile", "-c", "kong.conf"], &[("KONG_WASM_CACHE_PATH", "")]);
    assert!(out.status.success(), "{}", gateway_tests::stderr(&out));
    assert!(gateway_tests::stderr(&out).contains(ROUTER_COMPILED), "{}", gateway_tests::stderr(&out));
    assert_eq!(
        entries(dir.path()).len(),
        16,
        "the router, the health probe, the analytics component and the thirteen bundled plugins"
    );

    let node = start(dir.path());
    let log = node.log();
    assert!(!log.contains("component compiled") && !log.contains("first start"), "{log}");
    assert!(log.contains(ROUTER_FROM_CACHE), "{log}");
    assert_routes(port);
    stop(node);
}
