//! Hybrid mode with real binaries in shared mTLS mode: a control plane configured over its Admin API
//! and data planes that dial it, sync, keep serving without it, and restart from their cache.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_tests::{DEADLINE, EchoServer, Exchange, Gateway, free_port, http_get, http_json, http_request, poll, run};
use serde_json::{Value, json};

/// How long a data plane may take to (re)connect: up to 10 s of redial delay, plus slack.
pub(crate) const SYNC_DEADLINE: Duration = Duration::from_secs(40);

pub(crate) fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A directory with a shared-mode cluster pair made by `gateway hybrid gen_cert`.
pub(crate) fn cluster_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["hybrid", "gen_cert", "cluster.crt", "cluster.key"], &[]);
    assert!(out.status.success(), "{}", gateway_tests::stderr(&out));
    dir
}

pub(crate) struct Cp {
    pub(crate) gateway: Gateway,
    pub(crate) admin: SocketAddr,
    pub(crate) cluster: u16,
}

pub(crate) fn write_conf(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

pub(crate) fn start_cp(dir: &Path, cluster: u16) -> Cp {
    start_cp_with(dir, cluster, &[])
}

/// A control plane with `extra` lines in its conf.
pub(crate) fn start_cp_with(dir: &Path, cluster: u16, extra: &[String]) -> Cp {
    start_cp_env(dir, cluster, extra, &[])
}

/// A control plane with `extra` lines in its conf and `env` in its environment.
pub(crate) fn start_cp_env(dir: &Path, cluster: u16, extra: &[String], env: &[(&str, &str)]) -> Cp {
    let admin = free_port();
    let mut lines = vec![
        "role = control_plane".into(),
        "cluster_cert = cluster.crt".into(),
        "cluster_cert_key = cluster.key".into(),
        "prefix = cp".into(),
        format!("admin_listen = 127.0.0.1:{admin}"),
        format!("cluster_listen = 127.0.0.1:{cluster}"),
        format!("cluster_telemetry_listen = 127.0.0.1:{}", free_port()),
        "status_listen = off".into(),
    ];
    lines.extend_from_slice(extra);
    write_conf(dir, "cp.conf", &lines);
    let mut gateway = Gateway::start(dir, &["-c", "cp.conf"], env);
    gateway.wait_for_log("gateway started");
    Cp { gateway, admin: at(admin), cluster }
}

pub(crate) struct Dp {
    pub(crate) gateway: Gateway,
    pub(crate) proxy: SocketAddr,
    pub(crate) status: SocketAddr,
}

/// A data plane named `name` (its prefix and conf file) dialing `cluster`.
pub(crate) fn start_dp(dir: &Path, name: &str, cluster: u16, extra: &[String]) -> Dp {
    start_dp_env(dir, name, cluster, extra, &[])
}

/// [`start_dp`] with `env` in its environment.
pub(crate) fn start_dp_env(dir: &Path, name: &str, cluster: u16, extra: &[String], env: &[(&str, &str)]) -> Dp {
    let (proxy, status) = (free_port(), free_port());
    let mut lines = vec![
        "role = data_plane".into(),
        "database = off".into(),
        "cluster_cert = cluster.crt".into(),
        "cluster_cert_key = cluster.key".into(),
        format!("cluster_control_plane = 127.0.0.1:{cluster}"),
        format!("cluster_telemetry_endpoint = 127.0.0.1:{}", free_port()),
        format!("prefix = {name}"),
        format!("proxy_listen = 127.0.0.1:{proxy}"),
        format!("status_listen = 127.0.0.1:{status}"),
    ];
    lines.extend_from_slice(extra);
    let conf = format!("{name}.conf");
    write_conf(dir, &conf, &lines);
    let mut gateway = Gateway::start(dir, &["-c", &conf], env);
    gateway.wait_for_log("gateway started");
    Dp { gateway, proxy: at(proxy), status: at(status) }
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Exchange {
    http_request(addr, "GET", path, &[]).unwrap()
}

pub(crate) fn cp_hash(cp: &Cp) -> Value {
    get(cp.admin, "/status").json()["configuration_hash"].clone()
}

pub(crate) fn data_planes(cp: &Cp) -> Vec<Value> {
    get(cp.admin, "/clustering/data-planes").json()["data"].as_array().unwrap().clone()
}

pub(crate) fn wait_status(dp: &Dp, path: &str, status: u16) {
    poll(&format!("{path} to answer {status} on the data plane"), SYNC_DEADLINE, || {
        (get(dp.proxy, path).status == status).then_some(())
    });
}

pub(crate) fn add_route(cp: &Cp, echo: &EchoServer, service: &str, route: &str, path: &str) {
    let s =
        http_json(cp.admin, "PUT", &format!("/services/{service}"), &json!({"url": format!("http://{}", echo.addr)}));
    assert_eq!(s.status, 200, "{s:?}");
    let r = http_json(
        cp.admin,
        "PUT",
        &format!("/routes/{route}"),
        &json!({"paths": [path], "service": {"name": service}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn changes_on_the_control_plane_answer_on_every_data_plane() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    let dps = [start_dp(dir.path(), "dp1", cp.cluster, &[]), start_dp(dir.path(), "dp2", cp.cluster, &[])];
    poll("both data planes to connect", SYNC_DEADLINE, || (data_planes(&cp).len() == 2).then_some(()));

    add_route(&cp, &echo, "s", "r", "/one");
    for dp in &dps {
        wait_status(dp, "/one", 200);
    }
    // Every data plane reports the control plane's hash.
    let hash = cp_hash(&cp);
    poll("the data planes to report the new hash", SYNC_DEADLINE, || {
        let rows = data_planes(&cp);
        rows.iter().all(|r| r["config_hash"] == hash && r["sync_status"] == "normal").then_some(())
    });
    let row = &data_planes(&cp)[0];
    for field in ["id", "ip", "hostname", "version", "last_seen", "labels"] {
        assert!(!row[field].is_null(), "{field} in {row}");
    }
    assert!(row["cert_details"]["expiry_timestamp"].as_i64().unwrap() > 0);

    http_json(cp.admin, "PATCH", "/routes/r", &json!({"paths": ["/two"]}));
    for dp in &dps {
        wait_status(dp, "/two", 200);
        assert_eq!(get(dp.proxy, "/one").status, 404);
    }
    assert_eq!(http_request(cp.admin, "DELETE", "/routes/r", &[]).unwrap().status, 204);
    for dp in &dps {
        wait_status(dp, "/two", 404);
    }
    assert!(get(cp.admin, "/clustering/status").json().as_object().unwrap().len() == 2);
}

#[test]
fn a_data_plane_keeps_serving_without_its_control_plane_and_resyncs_to_the_latest() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cluster = free_port();
    let mut cp = start_cp(dir.path(), cluster);
    let dp = start_dp(dir.path(), "dp", cluster, &[]);
    add_route(&cp, &echo, "stable", "stable", "/stable");
    add_route(&cp, &echo, "moving", "moving", "/v1");
    wait_status(&dp, "/stable", 200);
    wait_status(&dp, "/v1", 200);

    // Load on the data plane for the whole story; no request may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = dp.proxy;
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match http_request(proxy, "GET", "/stable", &[]) {
                    Ok(r) if r.status == 200 => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };

    cp.gateway.signal("KILL");
    cp.gateway.wait_exit(DEADLINE);
    // The loss is logged, then redials come 5–10 s apart.
    poll("two failed redials", SYNC_DEADLINE, || {
        (dp.gateway.log().matches("cannot sync with the control plane").count() >= 2).then_some(())
    });
    let log = dp.gateway.log();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("cannot sync with the control plane")).collect();
    assert!(failures[0].contains("the link to the control plane"), "names the loss: {}", failures[0]);
    assert!(failures[1].contains("Connection refused"), "names the cause: {}", failures[1]);
    for line in &failures {
        let secs: u64 = line.split("retry_in=").nth(1).unwrap().trim_end_matches('s').parse().unwrap();
        assert!((5..=10).contains(&secs), "{line}");
    }
    let marker = log.len();

    // The control plane comes back on its store, changes twice before the data plane redials: the
    // data plane gets only the latest.
    let cp = start_cp(dir.path(), cluster);
    http_json(cp.admin, "PATCH", "/routes/moving", &json!({"paths": ["/v2"]}));
    http_json(cp.admin, "PATCH", "/routes/moving", &json!({"paths": ["/v3"]}));
    wait_status(&dp, "/v3", 200);
    assert_eq!(get(dp.proxy, "/v1").status, 404);
    let after = dp.gateway.log()[marker..].to_string();
    assert_eq!(after.matches("configuration from the control plane applied").count(), 1, "{after}");

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 100, "the load ran: {ok} requests");
    drop(cp);
}

#[test]
fn a_data_plane_starts_from_its_cache_then_declarative_config_then_nothing() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cluster = free_port();
    {
        let cp = start_cp(dir.path(), cluster);
        let mut dp = start_dp(dir.path(), "dp", cluster, &[]);
        add_route(&cp, &echo, "s", "r", "/cached");
        wait_status(&dp, "/cached", 200);
        // The configuration with the route is the one cached (the empty one pushed at connect was
        // cached first, and stopping before the second write would leave that one).
        let hash = cp_hash(&cp);
        dp.gateway.wait_for_log(&format!("configuration cached hash={}", hash.as_str().unwrap()));
    }
    // Control plane gone: the restarted data plane serves its cache.
    let mut dp = start_dp(dir.path(), "dp", cluster, &[]);
    dp.gateway.wait_for_log("serving the cached configuration");
    assert_eq!(get(dp.proxy, "/cached").status, 200);
    assert_eq!(http_get(dp.status, "/status/ready").unwrap().status, 200);
    drop(dp);

    // No cache, a declarative file: served.
    std::fs::write(
        dir.path().join("kong.yml"),
        format!(
            "_format_version: '3.0'\nservices:\n- {{name: d, url: 'http://{}', routes: [{{paths: [/declared]}}]}}\n",
            echo.addr
        ),
    )
    .unwrap();
    let mut dp = start_dp(dir.path(), "fresh", cluster, &["declarative_config = kong.yml".into()]);
    dp.gateway.wait_for_log("serving declarative_config until the control plane answers");
    assert_eq!(get(dp.proxy, "/declared").status, 200);
    drop(dp);

    // Neither: 404 to everything and not ready.
    let mut dp = start_dp(dir.path(), "empty", cluster, &[]);
    dp.gateway.wait_for_log("no configuration yet");
    assert_eq!(get(dp.proxy, "/cached").status, 404);
    assert_eq!(http_get(dp.status, "/status/ready").unwrap().status, 503);
}

#[test]
fn a_corrupted_cache_is_set_aside_and_the_node_syncs_again() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cache = dir.path().join("dp/dbless.lmdb");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("data.mdb"), vec![0xa5; 128 * 1024]).unwrap();
    let cp = start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/after");
    let mut dp = start_dp(dir.path(), "dp", cp.cluster, &[]);
    dp.gateway.wait_for_log("the configuration cache was unusable: moved it aside");
    wait_status(&dp, "/after", 200);
    let aside: Vec<String> = std::fs::read_dir(dir.path().join("dp"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("dbless.lmdb.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

#[test]
fn a_data_plane_with_another_certificate_is_refused() {
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    assert!(run(&other, &["hybrid", "gen_cert", "cluster.crt", "cluster.key"], &[]).status.success());
    let mut dp = start_dp(&other, "dp", cp.cluster, &[]);
    dp.gateway.wait_for_log("is not the pinned cluster certificate");
    let mut cp = cp;
    // The data plane refuses first (the pins differ) and tells the control plane with an alert.
    cp.gateway.wait_for_log("a data plane refused this control plane's certificate");
    assert!(data_planes(&cp).is_empty());
}

/// A user plugin configured on the control plane runs on the data planes that offer it; one that
/// does not offer it is `plugin_set_incompatible` and gets no configuration (and keeps serving the
/// last one it had); a plugin the control plane does not run is refused at write time.
#[test]
fn a_user_plugin_runs_on_data_planes_that_offer_it() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let plugins = crate::wasm_plugins::plugin_dir(dir.path(), &["template"]);
    let offer = [format!("wasm_plugins_path = {plugins}"), "plugins = bundled, template".to_string()];
    let cp = start_cp_with(dir.path(), free_port(), &offer);
    add_route(&cp, &echo, "s", "r", "/p");
    let unknown = http_json(cp.admin, "POST", "/routes/r/plugins", &json!({"name": "my-plugin"}));
    assert_eq!(unknown.status, 400, "{unknown:?}");
    assert_eq!(
        unknown.json()["fields"]["name"],
        "plugin 'my-plugin' not enabled; add it to the 'plugins' configuration property"
    );
    let with = start_dp(dir.path(), "with", cp.cluster, &offer);
    let without = start_dp(dir.path(), "without", cp.cluster, &[]);
    wait_status(&with, "/p", 200);
    wait_status(&without, "/p", 200);

    let plugin = http_json(
        cp.admin,
        "POST",
        "/routes/r/plugins",
        &json!({"name": "template", "config": {"header_value": "from-cp"}}),
    );
    assert_eq!(plugin.status, 201, "{plugin:?}");
    poll("the plugin to run on the data plane that offers it", SYNC_DEADLINE, || {
        let reply = get(with.proxy, "/p");
        (reply.status == 200 && reply.json()["headers"]["x-template"] == "from-cp").then_some(())
    });
    poll("one data plane in sync, the other plugin_set_incompatible", SYNC_DEADLINE, || {
        let mut states: Vec<String> =
            data_planes(&cp).iter().map(|r| r["sync_status"].as_str().unwrap_or_default().to_string()).collect();
        states.sort();
        (states == ["normal", "plugin_set_incompatible"]).then_some(())
    });
    let reply = get(without.proxy, "/p");
    assert_eq!(reply.status, 200, "the data plane without the plugin keeps serving its last configuration");
    assert!(reply.json()["headers"]["x-template"].is_null());
}

/// docs/hybrid-mode.md, step by step, with the shipped conf/cp.conf and conf/dp.conf (ports moved to
/// free ones through the environment).
#[test]
fn the_hybrid_walkthrough_works_with_the_shipped_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    for name in ["cp.conf", "dp.conf"] {
        std::fs::copy(gateway_tests::repo_root().join("conf").join(name), dir.path().join("conf").join(name)).unwrap();
    }
    assert!(run(dir.path(), &["hybrid", "gen_cert"], &[]).status.success());
    let listen = |p: u16| format!("127.0.0.1:{p}");
    let (admin, cluster, telemetry, cp_status) = (free_port(), free_port(), free_port(), free_port());
    let (proxy, tls, dp_status) = (free_port(), free_port(), free_port());
    let cp_env = [
        ("KONG_ADMIN_LISTEN", listen(admin)),
        ("KONG_CLUSTER_LISTEN", listen(cluster)),
        ("KONG_CLUSTER_TELEMETRY_LISTEN", listen(telemetry)),
        ("KONG_STATUS_LISTEN", listen(cp_status)),
    ];
    let env: Vec<(&str, &str)> = cp_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut cp = Gateway::start(dir.path(), &["-c", "conf/cp.conf"], &env);
    cp.wait_for_log("gateway started");
    let dp_env = [
        ("KONG_CLUSTER_CONTROL_PLANE", listen(cluster)),
        ("KONG_CLUSTER_TELEMETRY_ENDPOINT", listen(telemetry)),
        ("KONG_PROXY_LISTEN", format!("127.0.0.1:{proxy}, 127.0.0.1:{tls} http2 ssl")),
        ("KONG_STATUS_LISTEN", listen(dp_status)),
    ];
    let env: Vec<(&str, &str)> = dp_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut dp = Gateway::start(dir.path(), &["-c", "conf/dp.conf"], &env);
    dp.wait_for_log("connected to the control plane");
    assert_eq!(http_get(at(dp_status), "/status/ready").unwrap().status, 503);

    let admin = at(admin);
    let service = gateway_tests::http_form(
        admin,
        "POST",
        "/services",
        &format!("name=status&url=http://127.0.0.1:{dp_status}/status"),
    );
    assert_eq!(service.status, 201, "{service:?}");
    let route = gateway_tests::http_form(admin, "POST", "/services/status/routes", "name=status&paths[]=/dp-status");
    assert_eq!(route.status, 201, "{route:?}");
    poll("the route on the data plane", SYNC_DEADLINE, || (get(at(proxy), "/dp-status").status == 200).then_some(()));
    let proxied = get(at(proxy), "/dp-status").json();
    let hash = get(admin, "/status").json()["configuration_hash"].clone();
    assert_eq!(proxied["configuration_hash"], hash);
    assert_eq!(proxied["role"], "data_plane");
    // The control plane learns it from the data plane's next ping, just after the route answers.
    poll("sync_status normal", SYNC_DEADLINE, || {
        let rows = get(admin, "/clustering/data-planes").json()["data"].clone();
        (rows[0]["sync_status"] == "normal").then_some(())
    });
    assert!(dir.path().join("servroot-dp/dbless.lmdb").is_dir());
    assert!(dir.path().join("servroot-cp/entities.lmdb").is_dir());
}
