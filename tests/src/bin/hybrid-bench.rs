//! Hybrid-mode measurements on this machine (not a test): a control plane and 10 data planes (the
//! release binary), then
//! - 100 route changes through the CP's Admin API, each timed from the write until the changed route
//!   answers on every data plane (p50/p99 of the slowest DP, and of each DP);
//! - a full configuration of 10,000 routes posted to `/config`: time until every DP answers its last
//!   route, the frame size the CP sent, and the DP's own time to decode, validate and apply it;
//!   then the same with one data plane left, to see one node's apply time without 9 others
//!   competing for the cores.
//!
//! Writes the "Hybrid sync" section of docs/benchmarks.md. Run with `bench/hybrid.sh`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_tests::{EchoServer, Gateway, free_port, http_json, http_request, poll, run};
use serde_json::json;

const DATA_PLANES: usize = 10;
const CHANGES: usize = 100;
const BIG_TABLE: usize = 10_000;

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn write(dir: &Path, name: &str, lines: &[String]) {
    std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Waits until `path` answers 200 on every proxy; returns the time each took, from `start`.
fn until_served(proxies: &[SocketAddr], path: &str, start: Instant) -> Vec<Duration> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = proxies
            .iter()
            .map(|&proxy| {
                scope.spawn(move || {
                    loop {
                        if http_request(proxy, "GET", path, &[]).is_ok_and(|r| r.status == 200) {
                            return start.elapsed();
                        }
                        assert!(start.elapsed() < Duration::from_secs(60), "{path} never answered on {proxy}");
                        std::thread::sleep(Duration::from_micros(500));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn main() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(run(root, &["hybrid", "gen_cert", "cluster.crt", "cluster.key"], &[]).status.success());
    let (admin, cluster) = (free_port(), free_port());
    write(
        root,
        "cp.conf",
        &[
            "role = control_plane".into(),
            "cluster_cert = cluster.crt".into(),
            "cluster_cert_key = cluster.key".into(),
            "prefix = cp".into(),
            format!("admin_listen = 127.0.0.1:{admin}"),
            format!("cluster_listen = 127.0.0.1:{cluster}"),
            format!("cluster_telemetry_listen = 127.0.0.1:{}", free_port()),
            "status_listen = off".into(),
        ],
    );
    let mut cp = Gateway::start(root, &["-c", "cp.conf"], &[]);
    cp.wait_for_log("gateway started");
    poll("the control plane", Duration::from_secs(30), || http_request(at(admin), "GET", "/status", &[]).ok());
    let admin = at(admin);

    let mut dps = Vec::new();
    let mut proxies = Vec::new();
    for i in 0..DATA_PLANES {
        let proxy = free_port();
        write(
            root,
            &format!("dp{i}.conf"),
            &[
                "role = data_plane".into(),
                "database = off".into(),
                "cluster_cert = cluster.crt".into(),
                "cluster_cert_key = cluster.key".into(),
                format!("cluster_control_plane = 127.0.0.1:{cluster}"),
                format!("cluster_telemetry_endpoint = 127.0.0.1:{}", free_port()),
                format!("prefix = dp{i}"),
                format!("proxy_listen = 127.0.0.1:{proxy}"),
                "status_listen = off".into(),
            ],
        );
        let mut dp = Gateway::start(root, &["-c", &format!("dp{i}.conf")], &[]);
        dp.wait_for_log("connected to the control plane");
        dps.push(dp);
        proxies.push(at(proxy));
    }
    assert_eq!(
        http_json(admin, "POST", "/services", &json!({"name": "s", "url": format!("http://{}", echo.addr)})).status,
        201
    );
    assert_eq!(http_json(admin, "POST", "/services/s/routes", &json!({"name": "r", "paths": ["/c0"]})).status, 201);
    until_served(&proxies, "/c0", Instant::now());

    // One change at a time, timed until it answers everywhere.
    let mut slowest = Vec::new();
    let mut each = Vec::new();
    for i in 1..=CHANGES {
        let start = Instant::now();
        let r = http_json(admin, "PATCH", "/routes/r", &json!({"paths": [format!("/c{i}")]}));
        assert_eq!(r.status, 200);
        let times = until_served(&proxies, &format!("/c{i}"), start);
        slowest.push(times.iter().max().unwrap().as_secs_f64() * 1000.0);
        each.extend(times.iter().map(|t| t.as_secs_f64() * 1000.0));
    }
    slowest.sort_by(f64::total_cmp);
    each.sort_by(f64::total_cmp);

    // A full configuration of 10,000 routes (a tenth with regex paths).
    let doc = json!({"_format_version": "3.0", "services": [{"name": "big", "url": format!("http://{}", echo.addr), "routes": big_routes("big")}]});
    let logs_before: Vec<usize> = dps.iter().map(|d| d.log().len()).collect();
    let cp_log_before = cp.log().len();
    let start = Instant::now();
    let posted = http_json(admin, "POST", "/config", &doc);
    assert_eq!(posted.status, 201, "{}", posted.body);
    let post_ms = start.elapsed().as_secs_f64() * 1000.0;
    let last = BIG_TABLE - 1;
    let host = format!("api{}.example.com", last % 100);
    let full: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = proxies
            .iter()
            .map(|&proxy| {
                let host = host.clone();
                scope.spawn(move || {
                    loop {
                        if http_request(proxy, "GET", &format!("/big{last}"), &[("Host", &host)])
                            .is_ok_and(|r| r.status == 200)
                        {
                            return start.elapsed();
                        }
                        assert!(start.elapsed() < Duration::from_secs(120), "the big table never answered on {proxy}");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let full_max = full.iter().max().unwrap().as_secs_f64() * 1000.0;
    let field = |line: &str, key: &str| -> Option<f64> {
        line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}="))).and_then(|v| v.parse().ok())
    };
    let mut apply_ms: Vec<f64> = dps
        .iter()
        .zip(&logs_before)
        .filter_map(|(dp, &from)| {
            dp.log()[from..]
                .lines()
                .filter(|l| {
                    l.contains("configuration from the control plane applied")
                        && l.contains(&format!("routes={BIG_TABLE}"))
                })
                .find_map(|l| field(l, "elapsed_ms"))
        })
        .collect();
    apply_ms.sort_by(f64::total_cmp);
    let frame_bytes = cp.log()[cp_log_before..]
        .lines()
        .filter(|l| l.contains("configuration sent"))
        .find_map(|l| field(l, "bytes"))
        .unwrap_or(f64::NAN);

    // One data plane alone: its apply time for another 10,000-route configuration.
    let solo = dps.remove(0);
    drop(dps);
    let solo_from = solo.log().len();
    let doc = json!({"_format_version": "3.0", "services": [{"name": "big", "url": format!("http://{}", echo.addr), "routes": big_routes("solo")}]});
    assert_eq!(http_json(admin, "POST", "/config", &doc).status, 201);
    let solo_ms = poll("the lone data plane to apply", Duration::from_secs(60), || {
        solo.log()[solo_from..]
            .lines()
            .filter(|l| {
                l.contains("configuration from the control plane applied") && l.contains(&format!("routes={BIG_TABLE}"))
            })
            .find_map(|l| field(l, "elapsed_ms"))
    });

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let section = format!(
        "<!-- hybrid-bench: generated, do not edit by hand -->\n\
## Hybrid sync\n\n\
Measured {date} on {cpus} cores: one control plane and {DATA_PLANES} data planes (release build, shared mTLS,\n\
loopback), all on this machine with the load generator. Command: `bench/hybrid.sh`.\n\n\
**One change** ({CHANGES} route changes through the Admin API, each timed from the write until the changed route\n\
answers on the data plane; the data planes poll every 0.5 ms):\n\n\
| | p50 | p99 | max |\n|---|---:|---:|---:|\n\
| slowest of the {DATA_PLANES} data planes | {s50:.1} ms | {s99:.1} ms | {smax:.1} ms |\n\
| each data plane | {e50:.1} ms | {e99:.1} ms | {emax:.1} ms |\n\n\
Target: ≤ 100 ms p99 for one change on 10 DPs: measured {s99:.1} ms.\n\n\
**Full sync of {BIG_TABLE} routes** (`POST /config`, a tenth with regex paths, hosts on every route):\n\n\
- `POST /config` answered in {post_ms:.0} ms (validation and the control plane's store);\n\
- the frame the control plane sent: {frame:.0} bytes (gzip);\n\
- a data plane's decode, validation and swap (its log's `elapsed_ms`): median {a50:.0} ms, max {amax:.0} ms;\n\
- from the write until the last route answered on all {DATA_PLANES} data planes: {full_max:.0} ms;\n\
- one data plane alone (the other nine stopped) applying another 10,000-route configuration: {solo_ms:.0} ms.\n\n\
Target: ≤ 1 s to apply 10,000 routes: measured {solo_ms:.0} ms on one data plane, {amax:.0} ms on the slowest of {DATA_PLANES} applying at once on {cpus} cores.\n\
<!-- /hybrid-bench -->\n",
        date = date(),
        s50 = percentile(&slowest, 0.5),
        s99 = percentile(&slowest, 0.99),
        smax = slowest.last().unwrap(),
        e50 = percentile(&each, 0.5),
        e99 = percentile(&each, 0.99),
        emax = each.last().unwrap(),
        frame = frame_bytes,
        a50 = if apply_ms.is_empty() { f64::NAN } else { percentile(&apply_ms, 0.5) },
        amax = apply_ms.last().copied().unwrap_or(f64::NAN),
    );
    print!("{section}");
    let doc_path = gateway_tests::repo_root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&doc_path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find("<!-- hybrid-bench"), old.find("<!-- /hybrid-bench -->")) {
        (Some(a), Some(b)) => format!("{}{section}{}", &old[..a], &old[b + "<!-- /hybrid-bench -->\n".len()..]),
        _ => format!("{}\n{section}", old.trim_end_matches('\n').to_string() + "\n"),
    };
    std::fs::write(&doc_path, new).unwrap();
    eprintln!("wrote {}", doc_path.display());
}

/// 10,000 routes named `<prefix><i>` (a tenth with regex paths, a host on each).
fn big_routes(prefix: &str) -> Vec<serde_json::Value> {
    (0..BIG_TABLE)
        .map(|i| {
            let path = if i % 10 == 5 { format!("~/{prefix}{i}/items/(?<id>\\d+)$") } else { format!("/{prefix}{i}") };
            json!({"name": format!("{prefix}{i}"), "paths": [path], "hosts": [format!("api{}.example.com", i % 100)]})
        })
        .collect()
}

fn date() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().expect("running date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
