//! Analytics on a traditional node: every proxied request folded by the analytics component into
//! per-minute aggregates in the node's own store, read back through `GET /analytics` (grouped by
//! service, route, consumer and node) and `GET /analytics/billing`, exact and kept across a
//! restart; a replacement component (`analytics_component`) does the folding when named.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_tests::{DbLess, EchoServer, Gateway, free_port, http_get, http_request, http_send, poll, wasm_fixture};
use serde_json::{Value, json};

/// Polls `GET /analytics?{query}` until its calls add up to `calls`.
fn analytics_with(admin: SocketAddr, query: &str, calls: u64) -> Value {
    poll(&format!("{calls} calls in /analytics?{query}"), Duration::from_secs(5), || {
        let answer = http_get(admin, &format!("/analytics?{query}")).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body = answer.json();
        let total: u64 = body["data"].as_array().unwrap().iter().map(|row| row["calls"].as_u64().unwrap()).sum();
        (total == calls).then_some(body)
    })
}

/// The row of `data` whose `key` field is `wanted` (`null` for the calls without one).
fn row<'a>(body: &'a Value, key: &str, wanted: &Value) -> &'a Value {
    let rows = body["data"].as_array().unwrap();
    rows.iter()
        .find(|row| match wanted {
            Value::Null => row[key].is_null(),
            _ => row[key]["id"] == wanted["id"],
        })
        .unwrap_or_else(|| panic!("no {key} {wanted} in {body}"))
}

const SERVICES: &str = r#"
services:
- name: billing
  id: 6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c01
  url: http://ECHO
  routes:
  - name: invoices
    id: 6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c11
    paths: [/invoices]
    plugins:
    - name: key-auth
- name: catalog
  id: 6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c02
  url: http://ECHO
  routes:
  - id: 6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c12
    paths: [/items]
consumers:
- username: alice
  id: 6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c21
  keyauth_credentials: [{key: alice-key}]
- username: bob
  id: 6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c22
  keyauth_credentials: [{key: bob-key}]
"#;

fn declarative(echo: SocketAddr) -> String {
    format!("_format_version: \"3.0\"\n{}", SERVICES.replace("ECHO", &echo.to_string()))
}

#[test]
fn a_traditional_node_counts_every_call_by_service_route_consumer_and_node_and_keeps_them() {
    let echo = EchoServer::start();
    let admin_port = free_port();
    let node = DbLess::start(&declarative(echo.addr), &[format!("admin_listen = 127.0.0.1:{admin_port}")]);
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let send = |method: &str, path: &str, key: Option<&str>, body: Option<&[u8]>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("apikey", k)).into_iter().collect();
        http_send(node.proxy, method, path, &headers, body).unwrap().status
    };
    for _ in 0..7 {
        assert_eq!(send("GET", "/invoices", Some("alice-key"), None), 200);
    }
    for _ in 0..3 {
        assert_eq!(send("GET", "/invoices", Some("bob-key"), None), 200);
    }
    for _ in 0..2 {
        assert_eq!(send("GET", "/invoices", None, None), 401);
    }
    for _ in 0..4 {
        assert_eq!(send("GET", "/items/1", None, None), 200);
    }
    assert_eq!(send("POST", "/items", None, Some(&[b'x'; 1000])), 200);
    assert_eq!(send("GET", "/nowhere", None, None), 404);

    let (billing, catalog) = (
        json!({"id": "6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c01", "name": "billing"}),
        json!({"id": "6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c02", "name": "catalog"}),
    );
    let by_service = analytics_with(admin, "group_by=service", 18);
    assert_eq!(by_service["group_by"], "service");
    assert_eq!(by_service["dropped"], 0);
    let row_billing = row(&by_service, "service", &billing);
    assert_eq!(row_billing["service"], billing);
    assert_eq!(row_billing["calls"], 12);
    assert_eq!(row_billing["status"], json!({"2xx": 10, "3xx": 0, "4xx": 2, "5xx": 0}));
    assert!(row_billing["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{row_billing}");
    assert!(row_billing["upstream_latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{row_billing}");
    assert_eq!(row_billing["bytes_in"], 0);
    assert!(row_billing["bytes_out"].as_u64().unwrap() > 0, "{row_billing}");
    let row_catalog = row(&by_service, "service", &catalog);
    assert_eq!(row_catalog["calls"], 5);
    assert_eq!(row_catalog["status"]["2xx"], 5);
    assert_eq!(row_catalog["bytes_in"], 1000);
    // No route matched: no service, no upstream.
    let unrouted = row(&by_service, "service", &Value::Null);
    assert_eq!(unrouted["calls"], 1);
    assert_eq!(unrouted["status"]["4xx"], 1);
    assert_eq!(unrouted["upstream_latency_ms"]["p50"], Value::Null);

    let by_consumer = analytics_with(admin, "group_by=consumer", 18);
    let alice = json!({"id": "6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c21", "username": "alice"});
    assert_eq!(row(&by_consumer, "consumer", &alice)["consumer"], alice);
    assert_eq!(row(&by_consumer, "consumer", &alice)["calls"], 7);
    assert_eq!(row(&by_consumer, "consumer", &json!({"id": "6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c22"}))["calls"], 3);
    assert_eq!(row(&by_consumer, "consumer", &Value::Null)["calls"], 8);

    let by_route = analytics_with(admin, "group_by=route", 18);
    let invoices = json!({"id": "6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c11", "name": "invoices"});
    assert_eq!(row(&by_route, "route", &invoices)["calls"], 12);
    let items = json!({"id": "6f2b0c52-2f43-4d8e-9a55-1a0e6f0b1c12", "name": null});
    assert_eq!(row(&by_route, "route", &items)["route"], items);

    let root = http_get(admin, "/").unwrap().json();
    let by_node = analytics_with(admin, "group_by=data_plane", 18);
    assert_eq!(by_node["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_node["data"][0]["data_plane"], json!({"id": root["node_id"], "hostname": root["hostname"]}));

    // A range that ends before the calls holds none; RFC 3339 and epoch seconds both read.
    let empty = http_get(admin, "/analytics?start=2020-01-01T00:00:00Z&end=1577880000").unwrap().json();
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["start"], "2020-01-01T00:00:00Z");

    let billing_answer = http_get(admin, "/analytics/billing").unwrap();
    assert_eq!(billing_answer.status, 200);
    let months = billing_answer.json();
    let month = &months["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(month["api_calls"], 18);
    assert_eq!(month["services"], 2);
    assert_eq!(month["month"].as_str().unwrap().len(), 7, "{month}");

    for (query, parameter) in [
        ("start=yesterday", "start"),
        ("end=2026-02-30T00:00:00Z", "end"),
        ("group_by=plugin", "group_by"),
        ("group=service", "group"),
        ("start=2000&end=1000", "start"),
    ] {
        let answer = http_get(admin, &format!("/analytics?{query}")).unwrap();
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        let body = answer.json();
        assert!(body["fields"][parameter].is_string(), "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(&format!("'{parameter}'")), "{query}: {body}");
    }
    assert_eq!(http_request(admin, "POST", "/analytics", &[]).unwrap().status, 405);

    // Stopped and started again on the same prefix: the analytics are still there.
    let DbLess { mut gateway, dir, .. } = node;
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(20)).success(), "{}", gateway.log());
    let mut again = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    again.wait_for_log("gateway started");
    let after = analytics_with(admin, "group_by=service", 18);
    assert_eq!(row(&after, "service", &billing)["calls"], 12);
}

#[test]
fn analytics_component_replaces_the_folding_and_analytics_off_serves_none() {
    let echo = EchoServer::start();
    let admin_port = free_port();
    let flat = wasm_fixture("analytics-flat");
    let node = DbLess::start(
        &declarative(echo.addr),
        &[format!("admin_listen = 127.0.0.1:{admin_port}"), format!("analytics_component = {}", flat.display())],
    );
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    for _ in 0..4 {
        assert_eq!(http_request(node.proxy, "GET", "/items/1", &[]).unwrap().status, 200);
    }
    // The fixture forgets services: all four calls group under no service.
    let body = analytics_with(admin, "group_by=service", 4);
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"][0]["service"], Value::Null);
    assert_eq!(body["data"][0]["bytes_out"], 0);
    drop(node);

    let admin_port = free_port();
    let off = DbLess::start(
        &declarative(echo.addr),
        &[format!("admin_listen = 127.0.0.1:{admin_port}"), "analytics = off".into()],
    );
    assert_eq!(http_request(off.proxy, "GET", "/items/1", &[]).unwrap().status, 200);
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    assert_eq!(http_get(admin, "/analytics").unwrap().status, 404);
    assert!(!off.dir.path().join("servroot/analytics.lmdb").exists());
}

#[test]
fn an_analytics_component_that_cannot_load_stops_the_start_naming_the_key() {
    let dir =
        DbLess::dir(free_port(), "_format_version: \"3.0\"\n", &["analytics_component = /nonexistent/a.wasm".into()]);
    let out = gateway_tests::run(dir.path(), &["-c", "kong.conf"], &[]);
    assert!(!out.status.success());
    let text = format!("{}{}", gateway_tests::stdout(&out), gateway_tests::stderr(&out));
    assert!(text.contains("analytics_component"), "{text}");
}
