//! `/metrics` on the status listener, as Prometheus scrapes it: Kong's metric names and labels,
//! counts exact per service, route, consumer and status code, and output that a real Prometheus
//! parser (the official Python client's OpenMetrics parser, Debian's `python3-prometheus-client`)
//! reads whole.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use gateway_tests::{DbLess, EchoServer, free_port, http_get, http_request, poll};

/// One sample as the parser read it: name, labels, value.
pub(crate) type Sample = (String, HashMap<String, String>, f64);

/// Parses `text` with prometheus_client's OpenMetrics parser; panics with its message if it
/// refuses the text.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running /usr/bin/python3 (.ci/setup installs python3-prometheus-client)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_count_each_request_by_service_route_consumer_and_code_in_kongs_names() {
    let echo = EchoServer::start();
    let status = free_port();
    let yaml = format!(
        r#"_format_version: "3.0"
services:
- name: billing
  url: http://{echo}
  routes:
  - name: invoices
    paths: [/invoices]
    plugins:
    - name: key-auth
- name: catalog
  url: http://{echo}
  routes:
  - paths: [/items]
consumers:
- username: "alice \"the\" admin"
  keyauth_credentials: [{{key: alice-key}}]
- username: bob
  keyauth_credentials: [{{key: bob-key}}]
"#,
        echo = echo.addr
    );
    let node = DbLess::start(&yaml, &[format!("status_listen = 127.0.0.1:{status}")]);
    let status = std::net::SocketAddr::from(([127, 0, 0, 1], status));
    let send = |path: &str, key: Option<&str>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("apikey", k)).into_iter().collect();
        http_request(node.proxy, "GET", path, &headers).unwrap().status
    };
    for _ in 0..7 {
        assert_eq!(send("/invoices", Some("alice-key")), 200);
    }
    for _ in 0..3 {
        assert_eq!(send("/invoices", Some("bob-key")), 200);
    }
    for _ in 0..2 {
        assert_eq!(send("/invoices", None), 401);
    }
    for _ in 0..5 {
        assert_eq!(send("/items/1", None), 200);
    }
    assert_eq!(send("/nowhere", None), 404);

    // A request is counted once its response has been sent: poll until all 18 are.
    let samples = poll("all 18 requests counted", Duration::from_secs(10), || {
        let answer = http_get(status, "/metrics").unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        let samples = parse(&answer.body);
        let total: f64 = samples.iter().filter(|(n, _, _)| n == "kong_http_requests_total").map(|(_, _, v)| v).sum();
        (total == 18.0).then_some(samples)
    });
    let requests = |labels: &[(&str, &str)]| value(&samples, "kong_http_requests_total", labels);
    let alice = "alice \"the\" admin";
    assert_eq!(
        requests(&[
            ("service", "billing"),
            ("route", "invoices"),
            ("code", "200"),
            ("consumer", alice),
            ("source", "service")
        ]),
        Some(7.0)
    );
    assert_eq!(requests(&[("service", "billing"), ("code", "200"), ("consumer", "bob")]), Some(3.0));
    // key-auth's own 401: no consumer, and (as in Kong) not the service's answer.
    assert_eq!(requests(&[("service", "billing"), ("code", "401"), ("consumer", ""), ("source", "kong")]), Some(2.0));
    // A route without a name is labelled by its id, as Kong does.
    let items = samples
        .iter()
        .find(|(n, l, _)| n == "kong_http_requests_total" && l.get("service").map(String::as_str) == Some("catalog"))
        .expect("the catalog service's requests");
    assert_eq!(items.2, 5.0);
    assert_eq!(items.1["route"].len(), 36, "a route id: {:?}", items.1);
    // No route: the gateway's own 404, with empty service and route.
    assert_eq!(requests(&[("service", ""), ("route", ""), ("code", "404"), ("source", "kong")]), Some(1.0));
    assert_eq!(requests(&[("workspace", "default"), ("code", "200"), ("consumer", "bob")]), Some(3.0));

    // Kong's latency histograms, per service and route: every request in the +Inf bucket.
    let latency = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    let invoices = [("service", "billing"), ("route", "invoices"), ("consumer", alice)];
    assert_eq!(latency("kong_request_latency_ms_count", &invoices), Some(7.0));
    let inf: Vec<(&str, &str)> = invoices.iter().copied().chain([("le", "+Inf")]).collect();
    assert_eq!(latency("kong_request_latency_ms_bucket", &inf), Some(7.0));
    assert_eq!(latency("kong_upstream_latency_ms_bucket", &inf), Some(7.0));
    assert_eq!(latency("kong_kong_latency_ms_bucket", &inf), Some(7.0));
    assert_eq!(value(&samples, "gateway_metrics_series_dropped_total", &[]), Some(0.0));

    // The node's gauges: each request above came on a connection of its own.
    assert_eq!(value(&samples, "kong_nginx_requests_total", &[("subsystem", "http")]), Some(18.0));
    let accepted = value(&samples, "kong_nginx_connections_total", &[("state", "accepted")]).unwrap();
    assert!(accepted >= 18.0, "{accepted}");
    assert_eq!(value(&samples, "kong_nginx_connections_total", &[("state", "handled")]), Some(accepted));
    assert!(value(&samples, "kong_nginx_connections_total", &[("state", "active")]).is_some());
    assert_eq!(value(&samples, "kong_node_info", &[]), Some(1.0));
}

#[test]
fn the_proxy_listener_routes_metrics_like_any_other_path() {
    let echo = EchoServer::start();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
        echo.addr
    );
    // The proxy is not a place for /metrics: the path is routed like any other.
    let node = DbLess::start(&yaml, &[]);
    let answer = http_get(node.proxy, "/metrics").unwrap();
    assert_eq!(answer.status, 200);
    assert!(!answer.body.contains("kong_http_requests"), "{}", answer.body);
}

/// A control plane's `/metrics` (on its Admin API and its status listener) shows each data plane
/// as Kong's exporter does; a data plane's shows its link to the control plane, up then down.
#[test]
fn hybrid_metrics_show_the_data_planes_and_the_link() {
    use crate::hybrid::{at, cluster_dir, data_planes, start_cp_with, start_dp};
    let dir = cluster_dir();
    let cluster = free_port();
    let cp_status = free_port();
    let mut cp = start_cp_with(dir.path(), cluster, &[format!("status_listen = 127.0.0.1:{cp_status}")]);
    // Something to sync, so that the data plane's configuration hash is not the empty one's.
    let echo = EchoServer::start();
    crate::hybrid::add_route(&cp, &echo, "echo", "r", "/echo");
    let dp = start_dp(dir.path(), "dp1", cluster, &[]);
    let row = poll("the data plane listed", crate::hybrid::SYNC_DEADLINE, || {
        // Listed from the link's start with no hash yet (""), then the empty configuration's, then
        // the synced one's.
        data_planes(&cp)
            .into_iter()
            .find(|r| r["config_hash"].as_str().is_some_and(|h| h.len() == 32 && h != "0".repeat(32)))
    });
    let id = row["id"].as_str().unwrap().to_string();

    for on in [cp.admin, at(cp_status)] {
        let answer = http_get(on, "/metrics").unwrap();
        assert_eq!(answer.status, 200, "{on}: {}", answer.body);
        let samples = parse(&answer.body);
        let labels = [("node_id", id.as_str()), ("hostname", row["hostname"].as_str().unwrap())];
        let last_seen = value(&samples, "kong_data_plane_last_seen", &labels).expect("kong_data_plane_last_seen");
        assert!((last_seen - row["last_seen"].as_f64().unwrap()).abs() <= 60.0, "{last_seen} against {row}");
        let hash = value(&samples, "kong_data_plane_config_hash", &labels).expect("kong_data_plane_config_hash");
        assert!(hash > 0.0, "the synced configuration's hash as a number: {hash}; {row}\n{}", answer.body);
        assert_eq!(value(&samples, "kong_data_plane_version_compatible", &labels), Some(1.0));
        assert_eq!(value(&samples, "kong_node_info", &[]), Some(1.0));
        // A control plane proxies nothing.
        assert_eq!(value(&samples, "kong_http_requests_total", &[]), None);
    }

    let link = |dp: &crate::hybrid::Dp| {
        let answer = http_get(dp.status, "/metrics").unwrap();
        value(&parse(&answer.body), "kong_control_plane_connected", &[])
    };
    let deadline = crate::hybrid::SYNC_DEADLINE;
    poll("the data plane's link reported up", deadline, || (link(&dp) == Some(1.0)).then_some(()));
    cp.gateway.signal("KILL");
    cp.gateway.wait_exit(gateway_tests::DEADLINE);
    poll("the data plane's link reported down", deadline, || (link(&dp) == Some(0.0)).then_some(()));
}

/// Each WebAssembly component's traps are counted by name (`gateway_wasm_traps_total`): a plugin
/// that traps on some requests shows exactly those, and the router, which never trapped, shows 0.
#[test]
fn wasm_traps_are_counted_per_component() {
    let echo = EchoServer::start();
    let status = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plugins = crate::wasm_plugins::plugin_dir(dir.path(), &["hostile"]);
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n  - paths: [/]\n    plugins:\n    - name: hostile\n      config: {{mode: trap}}\n",
        echo.addr
    );
    let node = DbLess::start(
        &yaml,
        &[
            format!("status_listen = 127.0.0.1:{status}"),
            format!("wasm_plugins_path = {plugins}"),
            "plugins = bundled, hostile".into(),
        ],
    );
    let status = std::net::SocketAddr::from(([127, 0, 0, 1], status));
    let traps = || {
        let answer = http_get(status, "/metrics").unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        parse(&answer.body)
    };
    let before = traps();
    assert_eq!(value(&before, "gateway_wasm_traps_total", &[("component", "hostile")]), Some(0.0), "listed at 0");
    for _ in 0..2 {
        let answer = http_request(node.proxy, "GET", "/", &[("x-hostile", "trap")]).unwrap();
        assert_eq!(answer.status, 500, "{}", answer.body);
        assert_eq!(http_request(node.proxy, "GET", "/", &[]).unwrap().status, 200, "the next request passes");
    }
    let after = traps();
    assert_eq!(value(&after, "gateway_wasm_traps_total", &[("component", "hostile")]), Some(2.0));
    let router = after
        .iter()
        .find(|(n, l, _)| n == "gateway_wasm_traps_total" && l.get("component").is_some_and(|c| c != "hostile"))
        .expect("the router is listed");
    assert_eq!(router.2, 0.0, "{router:?}");
}
