//! Hybrid analytics with real binaries: data planes fold their requests' records and send them to
//! the control plane's telemetry listener (`/v1/ingest`), which keeps per-minute aggregates and
//! answers `GET /analytics`: exact totals from two data planes, through a control plane outage,
//! with a bounded buffer whose drops are counted and reported.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway_tests::{EchoServer, free_port, http_get, http_json, http_request, poll};
use serde_json::{Value, json};

use crate::hybrid::{Cp, Dp, SYNC_DEADLINE, cluster_dir, start_cp_with, start_dp, wait_status};

/// Two services behind key-auth (`/a`, `/b`), a probe route without auth (`/probe`, service `s0`)
/// and two consumers with keys `k1` and `k2`.
fn configure(cp: &Cp, echo: &EchoServer) {
    let url = format!("http://{}", echo.addr);
    for (service, path) in [("s0", "/probe"), ("s1", "/a"), ("s2", "/b")] {
        let put = |p: &str, body: Value| {
            let answer = http_json(cp.admin, "PUT", p, &body);
            assert_eq!(answer.status, 200, "{p}: {answer:?}");
        };
        put(&format!("/services/{service}"), json!({"url": url}));
        put(&format!("/routes/r-{service}"), json!({"paths": [path], "service": {"name": service}}));
        if service != "s0" {
            let plugin =
                http_json(cp.admin, "POST", &format!("/routes/r-{service}/plugins"), &json!({"name": "key-auth"}));
            assert_eq!(plugin.status, 201, "{plugin:?}");
        }
    }
    for (consumer, key) in [("c1", "k1"), ("c2", "k2")] {
        assert_eq!(http_json(cp.admin, "PUT", &format!("/consumers/{consumer}"), &json!({})).status, 200);
        let credential = http_json(cp.admin, "POST", &format!("/consumers/{consumer}/key-auth"), &json!({"key": key}));
        assert_eq!(credential.status, 201, "{credential:?}");
    }
}

/// `/analytics?{query}`'s rows by the group's name (`service.name`, `consumer.username`,
/// `data_plane.id`), and the answer.
fn by(cp: &Cp, group: &str) -> (std::collections::BTreeMap<String, u64>, Value) {
    let answer = http_get(cp.admin, &format!("/analytics?group_by={group}")).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let field = match group {
        "service" => "name",
        "consumer" => "username",
        _ => "id",
    };
    let rows = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let name = row[group][field].as_str().unwrap_or("-").to_string();
            (name, row["calls"].as_u64().unwrap())
        })
        .collect();
    (rows, body)
}

fn count(rows: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    rows.get(name).copied().unwrap_or(0)
}

/// What a load sent, by service, consumer and data plane.
struct Sent {
    services: Vec<(String, u64)>,
    consumers: Vec<(String, u64)>,
    per_dp: Vec<u64>,
}

/// Sends `n` requests over `dps` in turn: to `/a` and `/b` alternately in pairs, with key `k1`
/// every third time and `k2` otherwise.
fn load(dps: &[&Dp], n: usize) -> Sent {
    load_counting(dps, n, &AtomicUsize::new(0))
}

/// [`load`], counting the requests answered in `done` as it goes.
fn load_counting(dps: &[&Dp], n: usize, done: &AtomicUsize) -> Sent {
    let (mut services, mut consumers, mut per_dp) = ([0u64; 2], [0u64; 2], vec![0u64; dps.len()]);
    for i in 0..n {
        let dp = i % dps.len();
        let service = usize::from(i % 4 >= 2);
        let consumer = usize::from(i % 3 != 0);
        let path = ["/a", "/b"][service];
        let key = ["k1", "k2"][consumer];
        let answer = http_request(dps[dp].proxy, "GET", path, &[("apikey", key)]).unwrap();
        assert_eq!(answer.status, 200, "{path} on data plane {dp}: {answer:?}");
        services[service] += 1;
        consumers[consumer] += 1;
        per_dp[dp] += 1;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Sent {
        services: vec![("s1".into(), services[0]), ("s2".into(), services[1])],
        consumers: vec![("c1".into(), consumers[0]), ("c2".into(), consumers[1])],
        per_dp,
    }
}

/// A probe request whose count shows that a flush after it reached the control plane.
fn flushed(cp: &Cp, dp: &Dp, deadline: Duration) {
    let before = count(&by(cp, "service").0, "s0");
    assert_eq!(http_request(dp.proxy, "GET", "/probe", &[]).unwrap().status, 200);
    poll("the probe to be counted", deadline, || (count(&by(cp, "service").0, "s0") > before).then_some(()));
}

fn telemetry_lines(port: u16) -> (Vec<String>, Vec<String>) {
    (
        vec![format!("cluster_telemetry_listen = 127.0.0.1:{port}")],
        vec![format!("cluster_telemetry_endpoint = 127.0.0.1:{port}")],
    )
}

fn ready(cp: &Cp, dp: &Dp) {
    wait_status(dp, "/probe", 200);
    poll("key-auth on the data plane", SYNC_DEADLINE, || {
        (http_request(dp.proxy, "GET", "/a", &[("apikey", "k1")]).unwrap().status == 200).then_some(())
    });
    // The telemetry link is up once a probe is counted.
    flushed(cp, dp, SYNC_DEADLINE);
}

#[test]
fn two_data_planes_totals_are_exact_on_the_control_plane_within_3_s() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let (cp_lines, dp_lines) = telemetry_lines(free_port());
    let cp = start_cp_with(dir.path(), free_port(), &cp_lines);
    configure(&cp, &echo);
    let dp1 = start_dp(dir.path(), "dp1", cp.cluster, &dp_lines);
    let dp2 = start_dp(dir.path(), "dp2", cp.cluster, &dp_lines);
    ready(&cp, &dp1);
    ready(&cp, &dp2);
    let (before_services, _) = by(&cp, "service");
    let (before_dps, _) = by(&cp, "data_plane");
    let (before_consumers, _) = by(&cp, "consumer");

    let Sent { services, consumers, per_dp } = load(&[&dp1, &dp2], 1000);
    let sent = Instant::now();
    poll("the control plane's totals to be exact", Duration::from_secs(3), || {
        let (rows, _) = by(&cp, "service");
        services.iter().all(|(name, n)| count(&rows, name) == count(&before_services, name) + n).then_some(())
    });
    let exact_after = sent.elapsed();
    let (rows, body) = by(&cp, "consumer");
    for (name, n) in &consumers {
        assert_eq!(count(&rows, name), count(&before_consumers, name) + n, "consumer {name}: {body}");
    }
    assert_eq!(body["dropped"], 0, "{body}");
    // Each data plane's own count, by its node id.
    let (rows, body) = by(&cp, "data_plane");
    assert_eq!(rows.len(), 2, "{body}");
    let total_before: u64 = before_dps.values().sum();
    assert_eq!(rows.values().sum::<u64>(), total_before + per_dp.iter().sum::<u64>(), "{body}");
    for row in body["data"].as_array().unwrap() {
        assert!(row["data_plane"]["hostname"].is_string(), "{row}");
    }
    // Nothing arrives twice: after one more flush from each, the totals have not moved.
    flushed(&cp, &dp1, Duration::from_secs(10));
    flushed(&cp, &dp2, Duration::from_secs(10));
    let (rows, body) = by(&cp, "service");
    for (name, n) in &services {
        assert_eq!(count(&rows, name), count(&before_services, name) + n, "{name}: {body}");
    }
    eprintln!("exact {exact_after:?} after the last request");
}

/// Stops the control plane (SIGTERM) and starts it again on the same prefix after `down`, during
/// which `during` runs.
fn outage<T>(dir: &Path, cp: Cp, cp_lines: &[String], down: Duration, during: impl FnOnce() -> T) -> (Cp, T) {
    let Cp { mut gateway, cluster, .. } = cp;
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(20)).success(), "{}", gateway.log());
    let stopped = Instant::now();
    let result = during();
    // The outage lasts `down` whatever the load took: the scenario, not a wait for a condition.
    if let Some(rest) = down.checked_sub(stopped.elapsed()) {
        std::thread::sleep(rest);
    }
    // The same admin port: the conf file is rewritten by start_cp_with with a new one.
    (start_cp_with(dir, cluster, cp_lines), result)
}

#[test]
fn a_control_plane_outage_of_20_s_loses_nothing() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let (cp_lines, dp_lines) = telemetry_lines(free_port());
    let cp = start_cp_with(dir.path(), free_port(), &cp_lines);
    configure(&cp, &echo);
    let dp = start_dp(dir.path(), "dp1", cp.cluster, &dp_lines);
    ready(&cp, &dp);
    let (before, _) = by(&cp, "service");

    let (cp, Sent { services, .. }) = outage(dir.path(), cp, &cp_lines, Duration::from_secs(20), || load(&[&dp], 500));
    poll("the totals to be exact after the outage", SYNC_DEADLINE, || {
        let (rows, _) = by(&cp, "service");
        services.iter().all(|(name, n)| count(&rows, name) == count(&before, name) + n).then_some(())
    });
    let (_, body) = by(&cp, "service");
    assert_eq!(body["dropped"], 0, "{body}");
    let log = dp.gateway.log();
    assert!(log.contains("cannot send telemetry to the control plane"), "{log}");
}

/// The data plane's `/metrics` sample `name` (no labels), as the official Prometheus client's
/// OpenMetrics parser reads the whole answer.
fn metric(dp: &Dp, name: &str) -> f64 {
    let text = http_get(dp.status, "/metrics").unwrap().body;
    let samples = crate::metrics::parse(&text);
    samples.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| *v).unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn past_analytics_buffer_size_limit_the_oldest_are_dropped_counted_and_reported() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let (cp_lines, mut dp_lines) = telemetry_lines(free_port());
    dp_lines.push("analytics_buffer_size_limit = 100".into());
    let cp = start_cp_with(dir.path(), free_port(), &cp_lines);
    configure(&cp, &echo);
    let dp = start_dp(dir.path(), "dp1", cp.cluster, &dp_lines);
    ready(&cp, &dp);
    let (before, _) = by(&cp, "service");
    let rss_before = gateway_tests::peak_rss(dp.gateway.pid());

    let (cp, _) = outage(dir.path(), cp, &cp_lines, Duration::ZERO, || {
        let sent = load(&[&dp], 500);
        assert_eq!(metric(&dp, "gateway_analytics_buffered_records"), 100.0);
        assert_eq!(metric(&dp, "gateway_telemetry_connected"), 0.0);
        sent
    });
    poll("100 counted and 400 dropped", SYNC_DEADLINE, || {
        let (rows, body) = by(&cp, "service");
        let counted: u64 = ["s1", "s2"].iter().map(|s| count(&rows, s) - count(&before, s)).sum();
        (counted == 100 && body["dropped"] == 400).then_some(())
    });
    assert_eq!(metric(&dp, "gateway_analytics_dropped_records_total"), 400.0);
    // 500 records would be well under a megabyte either way: the bound is the buffer's count above;
    // this guards against a gross leak.
    let grown = gateway_tests::peak_rss(dp.gateway.pid()).saturating_sub(rss_before);
    assert!(grown < 32 << 20, "the data plane grew by {grown} bytes");
}

#[test]
fn telemetry_goes_through_tinyproxy() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let telemetry = free_port();
    let (cp_lines, mut dp_lines) = telemetry_lines(telemetry);
    let cp = start_cp_with(dir.path(), free_port(), &cp_lines);
    configure(&cp, &echo);
    let proxy = gateway_tests::peers::tinyproxy(dir.path(), &[cp.cluster, telemetry], None);
    dp_lines.extend(["cluster_use_proxy = on".into(), format!("proxy_server = {}", proxy.url("http", None))]);
    let dp = start_dp(dir.path(), "dp1", cp.cluster, &dp_lines);
    ready(&cp, &dp);
    let log = proxy.log_text();
    assert!(log.contains(&format!("CONNECT 127.0.0.1:{telemetry}")), "{log}");
    assert!(log.contains(&format!("CONNECT 127.0.0.1:{}", cp.cluster)), "{log}");
}

/// The control plane killed (SIGKILL) while batches flow, mid-send or mid-merge as it happens:
/// the data plane sends again what was not acknowledged, the control plane merges each batch
/// once, so the totals are exact after its restart.
#[test]
fn a_control_plane_killed_under_load_counts_nothing_twice() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let (cp_lines, mut dp_lines) = telemetry_lines(free_port());
    dp_lines.push("analytics_flush_interval = 0.1".into());
    let cp = start_cp_with(dir.path(), free_port(), &cp_lines);
    configure(&cp, &echo);
    let dp = start_dp(dir.path(), "dp1", cp.cluster, &dp_lines);
    ready(&cp, &dp);
    let (before, _) = by(&cp, "service");

    let Cp { mut gateway, cluster, .. } = cp;
    let answered = AtomicUsize::new(0);
    let (first, second) = std::thread::scope(|scope| {
        let load = scope.spawn(|| load_counting(&[&dp], 300, &answered));
        // Killed a third of the way into the load: several flushes (one per 0.1 s) have gone and
        // more are coming, so batches are in flight. A load that fails stops the wait too, and
        // its own panic is the one reported (the join below).
        poll("a third of the load to be answered", SYNC_DEADLINE, || {
            (answered.load(Ordering::Relaxed) >= 100 || load.is_finished()).then_some(())
        });
        let at_kill = answered.load(Ordering::Relaxed);
        gateway.signal("KILL");
        let _ = gateway.wait_exit(Duration::from_secs(10));
        let first = load.join().unwrap();
        assert!(at_kill < 300, "the load was over before the kill: nothing was in flight");
        (first, load_after(&dp))
    });
    let cp = start_cp_with(dir.path(), cluster, &cp_lines);
    poll("the totals to be exact after the kill", SYNC_DEADLINE, || {
        let (rows, _) = by(&cp, "service");
        first
            .services
            .iter()
            .zip(&second.services)
            .all(|((name, a), (_, b))| count(&rows, name) == count(&before, name) + a + b)
            .then_some(())
    });
    // And stays so after another flush.
    flushed(&cp, &dp, SYNC_DEADLINE);
    let (rows, body) = by(&cp, "service");
    for ((name, a), (_, b)) in first.services.iter().zip(&second.services) {
        assert_eq!(count(&rows, name), count(&before, name) + a + b, "{name}: {body}");
    }
    assert_eq!(body["dropped"], 0, "{body}");
}

/// A little more load while the control plane is gone.
fn load_after(dp: &Dp) -> Sent {
    load(&[dp], 50)
}

/// The case the sequence numbers exist for, made certain: the control plane is paused (SIGSTOP)
/// with a batch in its socket, the data plane gives up waiting for the acknowledgement and
/// redials; resumed, the control plane merges the batch and its acknowledgement goes nowhere; the
/// data plane sends the batch again on the new link, and the control plane does not count it twice.
#[test]
fn a_batch_merged_but_not_acknowledged_is_sent_again_and_counted_once() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let (cp_lines, dp_lines) = telemetry_lines(free_port());
    let mut cp = start_cp_with(dir.path(), free_port(), &cp_lines);
    configure(&cp, &echo);
    let mut dp = start_dp(dir.path(), "dp1", cp.cluster, &dp_lines);
    ready(&cp, &dp);
    let (before, _) = by(&cp, "service");

    cp.gateway.signal("STOP");
    let sent = load(&[&dp], 40);
    dp.gateway.wait_for_log("not acknowledged within");
    cp.gateway.signal("CONT");
    poll("the totals to be exact", SYNC_DEADLINE, || {
        let (rows, _) = by(&cp, "service");
        sent.services.iter().all(|(name, n)| count(&rows, name) == count(&before, name) + n).then_some(())
    });
    cp.gateway.wait_for_log("a telemetry batch came again");
    flushed(&cp, &dp, SYNC_DEADLINE);
    let (rows, body) = by(&cp, "service");
    for (name, n) in &sent.services {
        assert_eq!(count(&rows, name), count(&before, name) + n, "{name}: {body}");
    }
}
