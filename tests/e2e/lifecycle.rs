//! Starting a node and stopping it: prefix creation, the wasm self-test, the status listener,
//! SIGTERM and SIGINT ending in a clean exit, and start failures that say why.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gateway_tests::{DEADLINE, Gateway, conf_dir, free_port, http_get, poll, stderr};

fn node_conf(status_port: u16, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        "prefix = prefix/node".to_string(),
        format!("status_listen = 127.0.0.1:{status_port}"),
        "proxy_listen = off".into(),
        "admin_listen = off".into(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    lines
}

fn status_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn wait_ready(node: &mut Gateway, port: u16) {
    node.wait_for_log("gateway started");
    poll("GET /status", DEADLINE, || http_get(status_addr(port), "/status").ok().filter(|r| r.status == 200));
}

#[test]
fn starts_on_a_config_and_stops_cleanly_on_sigterm() {
    let port = free_port();
    let (dir, _) = conf_dir(&node_conf(port, &[]));
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    wait_ready(&mut node, port);

    let prefix = dir.path().join("prefix/node");
    assert_eq!(std::fs::metadata(&prefix).unwrap().permissions().mode() & 0o777, 0o700);
    let status = http_get(status_addr(port), "/status").unwrap().json();
    assert_eq!(status["role"], "traditional");
    assert_eq!(http_get(status_addr(port), "/status/ready").unwrap().status, 503);
    assert!(node.log().contains("wasm engine ready") && node.log().contains("component=health"), "{}", node.log());

    node.signal("TERM");
    let exit = node.wait_exit(DEADLINE);
    assert!(exit.success(), "exit {exit}: {}", node.log());
    assert!(node.log().contains("signal=\"SIGTERM\""), "{}", node.log());
    assert!(node.log().contains("gateway stopped"), "{}", node.log());
    assert!(TcpStream::connect(status_addr(port)).is_err(), "the status port is closed after the stop");
}

#[test]
fn sigint_stops_it_without_waiting_for_idle_keepalive_connections() {
    let port = free_port();
    let (dir, _) = conf_dir(&node_conf(port, &[]));
    let mut node = Gateway::start(dir.path(), &["start", "-c", "kong.conf"], &[]);
    wait_ready(&mut node, port);

    // A client holding an idle keep-alive connection must not hold the stop hostage for the
    // whole drain bound (10 s): idle connections are closed at once.
    let mut idle = TcpStream::connect(status_addr(port)).unwrap();
    std::io::Write::write_all(&mut idle, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 12];
    std::io::Read::read_exact(&mut idle, &mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");

    node.signal("INT");
    let exit = node.wait_exit(Duration::from_secs(5));
    assert!(exit.success(), "exit {exit}: {}", node.log());
    assert!(node.log().contains("signal=\"SIGINT\""), "{}", node.log());
}

#[test]
fn without_a_config_file_it_runs_on_built_in_defaults_and_the_environment() {
    assert!(
        !std::path::Path::new("/etc/kong/kong.conf").exists(),
        "this test needs a machine without /etc/kong/kong.conf"
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let env = [
        ("KONG_PREFIX", "servroot"),
        ("KONG_STATUS_LISTEN", listen.as_str()),
        ("KONG_PROXY_LISTEN", "off"),
        ("KONG_ADMIN_LISTEN", "off"),
    ];
    let mut node = Gateway::start(dir.path(), &[], &env);
    wait_ready(&mut node, port);
    assert!(node.log().contains("running on built-in defaults"), "{}", node.log());
    assert!(dir.path().join("servroot").is_dir());
    node.signal("TERM");
    assert!(node.wait_exit(DEADLINE).success());
}

#[test]
fn log_level_decides_what_is_logged() {
    let port = free_port();
    let (dir, _) = conf_dir(&node_conf(port, &["log_level = warn"]));
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    poll("GET /status", DEADLINE, || http_get(status_addr(port), "/status").ok().filter(|r| r.status == 200));
    node.signal("TERM");
    assert!(node.wait_exit(DEADLINE).success());
    let log = node.log();
    assert!(!log.contains("gateway started") && !log.contains("INFO"), "info lines at log_level = warn:\n{log}");

    let port = free_port();
    let (dir, _) = conf_dir(&node_conf(port, &["log_level = debug"]));
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    wait_ready(&mut node, port);
    node.signal("TERM");
    assert!(node.wait_exit(DEADLINE).success());
    assert!(node.log().contains("INFO") && node.log().contains("gateway started"));
}

#[test]
fn a_bad_config_fails_the_start_with_every_problem() {
    let port = free_port();
    let (dir, _) = conf_dir(&node_conf(port, &["log_level = loud", "role = edge"]));
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    let exit = node.wait_exit(DEADLINE);
    assert_eq!(exit.code(), Some(1));
    let log = node.log();
    assert!(log.contains("kong.conf:5: log_level = \"loud\""), "{log}");
    assert!(log.contains("kong.conf:6: role = \"edge\""), "{log}");
    assert!(!dir.path().join("prefix").exists(), "nothing is written for a config that does not load");
}

#[test]
fn a_busy_port_fails_the_start_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (dir, _) = conf_dir(&node_conf(port, &[]));
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    let exit = node.wait_exit(DEADLINE);
    assert_eq!(exit.code(), Some(1));
    assert!(node.log().contains(&format!("cannot listen on 127.0.0.1:{port} (status_listen)")), "{}", node.log());
}

#[test]
fn a_prefix_that_is_a_file_fails_the_start() {
    let port = free_port();
    let (dir, _) = conf_dir(&node_conf(port, &[]));
    std::fs::create_dir(dir.path().join("prefix")).unwrap();
    std::fs::write(dir.path().join("prefix/node"), "").unwrap();
    let out = gateway_tests::run(dir.path(), &["-c", "kong.conf"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("prefix/node exists but is not a directory"), "{}", stderr(&out));
}

/// The names of a running process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn nginx_worker_processes_sets_how_many_proxy_workers_serve() {
    let yaml =
        "_format_version: '3.0'\nservices:\n- name: s\n  url: http://127.0.0.1:9\n  routes: [{name: r, paths: [/]}]\n";
    let cores = std::thread::available_parallelism().unwrap().get();
    for (setting, workers) in [("3", 3), ("auto", cores)] {
        let node = gateway_tests::DbLess::start(yaml, &[format!("nginx_worker_processes = {setting}")]);
        let mut names: Vec<String> =
            thread_names(node.gateway.pid()).into_iter().filter(|n| n.starts_with("proxy-worker-")).collect();
        names.sort();
        let expected: Vec<String> = (0..workers).map(|i| format!("proxy-worker-{i}")).collect();
        assert_eq!(names, expected, "nginx_worker_processes = {setting}");
        // Every worker serves: more connections than workers, all answered (502: nothing listens
        // upstream, so the answer is the gateway's own).
        for _ in 0..workers * 2 {
            let reply = gateway_tests::http_request(node.proxy, "GET", "/", &[]).unwrap();
            assert_eq!(reply.status, 502, "{reply:?}");
        }
    }
}
