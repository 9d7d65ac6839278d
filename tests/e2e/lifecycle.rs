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

/// The soft and hard open-file limits of a running process (`None`: unlimited).
fn open_file_limits(pid: u32) -> (Option<u64>, Option<u64>) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<Option<u64>> =
        line["Max open files".len()..].split_whitespace().take(2).map(|v| v.parse().ok()).collect();
    (numbers[0], numbers[1])
}

#[test]
fn nginx_main_worker_rlimit_nofile_raises_the_limit_for_every_worker_or_says_why_not() {
    let port = free_port();
    let (dir, _) =
        conf_dir(&node_conf(port, &["nginx_worker_processes = 2", "nginx_main_worker_rlimit_nofile = 3000"]));
    let env = [];
    // 2 workers × 3000 + 1024 = 7024, under the hard limit: raised to it.
    let mut node =
        Gateway::start_via(&["prlimit", "--nofile=1024:16000", "--"], dir.path(), &["-c", "kong.conf"], &env);
    wait_ready(&mut node, port);
    assert_eq!(open_file_limits(node.pid()), (Some(7024), Some(16000)), "{}", node.log());
    node.signal("TERM");
    assert!(node.wait_exit(DEADLINE).success());
    // A hard limit below the need: as high as it goes, and the log says why.
    let mut node = Gateway::start_via(&["prlimit", "--nofile=1024:4096", "--"], dir.path(), &["-c", "kong.conf"], &env);
    wait_ready(&mut node, port);
    assert_eq!(open_file_limits(node.pid()), (Some(4096), Some(4096)));
    let log = node.log();
    assert!(log.contains("the open-file limit stays at 4096, below the 7024 asked for"), "{log}");
    assert!(log.contains("hard limit is 4096"), "{log}");
}

#[test]
fn nginx_events_worker_connections_caps_client_connections_and_the_rest_wait() {
    let upstream = gateway_tests::EchoServer::start();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
        upstream.addr
    );
    let status = free_port();
    let node = gateway_tests::DbLess::start(
        &yaml,
        &[
            "nginx_worker_processes = 1".into(),
            "nginx_events_worker_connections = 2".into(),
            format!("status_listen = 127.0.0.1:{status}"),
        ],
    );
    let server = http_get(status_addr(status), "/status").unwrap().json()["server"].clone();
    assert_eq!((server["workers"].clone(), server["worker_connections"].clone()), (1.into(), 2.into()), "{server}");
    // Two keep-alive connections, each answered once and left open.
    let request = b"GET /held HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut conn = TcpStream::connect(node.proxy).unwrap();
            conn.set_read_timeout(Some(DEADLINE)).unwrap();
            std::io::Write::write_all(&mut conn, request).unwrap();
            assert!(read_head(&mut conn).starts_with("HTTP/1.1 200"));
            conn
        })
        .collect();
    // A third is taken by the kernel's backlog but not served while the two stay open...
    let mut third = TcpStream::connect(node.proxy).unwrap();
    std::io::Write::write_all(&mut third, request).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut byte = [0u8; 1];
    let waited = std::io::Read::read(&mut third, &mut byte);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the third connection was served while two were open: {waited:?}"
    );
    let server = http_get(status_addr(status), "/status").unwrap().json()["server"].clone();
    assert_eq!(server["connections_active"], 2, "{server}");
    // ...and is served as soon as one of them closes.
    drop(held.remove(0));
    third.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = read_head(&mut third);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Reads a response head (up to the blank line) and the 2-byte-or-so body the echo server may
/// send is left unread; returns the head.
fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match std::io::Read::read(conn, &mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("the response head ended early: {other:?} after {:?}", String::from_utf8_lossy(&head)),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
