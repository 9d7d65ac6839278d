//! The logs as an operator meets them. Access logs (`proxy_access_log`, `admin_access_log`,
//! `status_access_log`): Kong's line formats in Kong's default files under the prefix, the client
//! as the realip rules name it, logrotate's move-then-SIGUSR1, `off`, `/dev/stderr`, and what is
//! left written at shutdown. Error logs (`proxy_error_log` ...): the node's messages in Kong's
//! files, reopened on SIGUSR1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_tests::{DbLess, EchoServer, Gateway, conf_dir, free_port, http_request, poll, run, stderr};

const DEADLINE: Duration = Duration::from_secs(20);

fn yaml(echo: &EchoServer) -> String {
    format!(
        "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://{}\n  routes: [{{name: r, paths: [/echo]}}]\n",
        echo.addr
    )
}

fn access_log(node: &DbLess) -> PathBuf {
    node.dir.path().join("servroot/logs/access.log")
}

/// Waits until `file` holds at least `n` lines, and returns them.
fn lines(file: &Path, n: usize) -> Vec<String> {
    poll(&format!("{n} lines in {}", file.display()), DEADLINE, || {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= n).then_some(lines)
    })
}

/// `[06/Dec/2026:18:26:51 +0000]`: nginx's `$time_local`.
fn assert_time_local(line: &str) {
    let time = line.split('[').nth(1).and_then(|t| t.split(']').next()).unwrap_or_else(|| panic!("no time in {line}"));
    let (date, zone) = time.split_once(' ').unwrap_or_else(|| panic!("no zone in {time}"));
    let parts: Vec<&str> = date.split(['/', ':']).collect();
    assert_eq!(parts.len(), 6, "{time}");
    assert!(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].contains(&parts[1]));
    assert!(zone.len() == 5 && (zone.starts_with('+') || zone.starts_with('-')), "{time}");
}

#[test]
fn the_proxy_logs_every_request_in_kongs_format_naming_the_client_as_realip_does() {
    let echo = EchoServer::start();
    let node = DbLess::start(&yaml(&echo), &["trusted_ips = 127.0.0.1/32".into()]);
    let ok = http_request(
        node.proxy,
        "GET",
        "/echo/x?y=1",
        &[("User-Agent", "curl/8.1 \"quoted\""), ("Referer", "https://example.com/page")],
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    let missing = http_request(node.proxy, "GET", "/nowhere", &[("X-Real-IP", "203.0.113.9")]).unwrap();
    assert_eq!(missing.status, 404);

    let logged = lines(&access_log(&node), 2);
    let proxied = logged.iter().find(|l| l.contains("/echo/x")).expect("the proxied request's line");
    assert!(proxied.starts_with("127.0.0.1 - - ["), "{proxied}");
    assert_time_local(proxied);
    let after_time = proxied.split("] ").nth(1).unwrap();
    let expected = format!(
        "\"GET /echo/x?y=1 HTTP/1.1\" 200 {} \"https://example.com/page\" \"curl/8.1 \\x22quoted\\x22\" kong_request_id: \"",
        ok.body.len()
    );
    assert!(after_time.starts_with(&expected), "{after_time}\nexpected it to start with {expected}");
    let id = after_time.strip_prefix(&expected).unwrap().strip_suffix('"').unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    // A trusted peer (trusted_ips) names the client in X-Real-IP, as nginx's realip module.
    let refused = logged.iter().find(|l| l.contains("/nowhere")).expect("the 404's line");
    assert!(refused.starts_with("203.0.113.9 - - ["), "{refused}");
    assert!(
        refused.contains(&format!("\"GET /nowhere HTTP/1.1\" 404 {} \"-\" \"-\"", missing.body.len())),
        "{refused}"
    );
}

#[test]
fn logrotate_moves_the_file_and_sigusr1_reopens_it() {
    let echo = EchoServer::start();
    let node = DbLess::start(&yaml(&echo), &[]);
    assert_eq!(http_request(node.proxy, "GET", "/echo/before", &[]).unwrap().status, 200);
    let file = access_log(&node);
    lines(&file, 1);
    let rotated = file.with_extension("log.1");
    std::fs::rename(&file, &rotated).unwrap();
    node.gateway.signal("USR1");
    poll("the access log reopened", DEADLINE, || file.exists().then_some(()));
    assert_eq!(http_request(node.proxy, "GET", "/echo/after", &[]).unwrap().status, 200);
    let now = lines(&file, 1);
    assert!(now.len() == 1 && now[0].contains("GET /echo/after "), "{now:?}");
    let before = std::fs::read_to_string(&rotated).unwrap();
    assert!(before.contains("GET /echo/before ") && !before.contains("/echo/after"), "{before}");
}

#[test]
fn lines_still_buffered_at_shutdown_are_written() {
    let echo = EchoServer::start();
    let mut node = DbLess::start(&yaml(&echo), &[]);
    for i in 0..20 {
        assert_eq!(http_request(node.proxy, "GET", &format!("/echo/{i}"), &[]).unwrap().status, 200);
    }
    node.gateway.signal("TERM");
    assert!(node.gateway.wait_exit(DEADLINE).success());
    let text = std::fs::read_to_string(access_log(&node)).unwrap();
    for i in 0..20 {
        assert!(text.contains(&format!("GET /echo/{i} HTTP/1.1")), "line {i} missing from:\n{text}");
    }
}

#[test]
fn the_admin_api_logs_in_combined_format_and_off_turns_a_log_off() {
    let echo = EchoServer::start();
    let (admin, status) = (free_port(), free_port());
    let node = DbLess::start(
        &yaml(&echo),
        &[
            format!("admin_listen = 127.0.0.1:{admin}"),
            format!("status_listen = 127.0.0.1:{status}"),
            "status_access_log = logs/status.log".into(),
            "proxy_access_log = off".into(),
        ],
    );
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let status = std::net::SocketAddr::from(([127, 0, 0, 1], status));
    assert_eq!(http_request(admin, "GET", "/services", &[("User-Agent", "ops")]).unwrap().status, 200);
    assert_eq!(http_request(status, "GET", "/status", &[]).unwrap().status, 200);
    assert_eq!(http_request(node.proxy, "GET", "/echo/", &[]).unwrap().status, 200);

    let logs = node.dir.path().join("servroot/logs");
    let admin_line = &lines(&logs.join("admin_access.log"), 1)[0];
    assert!(admin_line.starts_with("127.0.0.1 - - ["), "{admin_line}");
    assert!(
        admin_line.contains("\"GET /services HTTP/1.1\" 200 ") && admin_line.ends_with("\"-\" \"ops\""),
        "{admin_line}"
    );
    let status_line = &lines(&logs.join("status.log"), 1)[0];
    assert!(status_line.contains("\"GET /status HTTP/1.1\" 200 "), "{status_line}");
    // The status log has been written after the proxied request: the proxy's would be too.
    assert!(!logs.join("access.log").exists(), "proxy_access_log = off wrote a file");
}

#[test]
fn dev_stderr_sends_the_lines_to_the_process_stderr() {
    let echo = EchoServer::start();
    let mut node = DbLess::start(&yaml(&echo), &["proxy_access_log = /dev/stderr combined".into()]);
    assert_eq!(http_request(node.proxy, "GET", "/echo/to-stderr", &[]).unwrap().status, 200);
    node.gateway.wait_for_log("\"GET /echo/to-stderr HTTP/1.1\" 200 ");
    let log = node.gateway.log();
    let line = log.lines().find(|l| l.contains("/echo/to-stderr")).unwrap();
    assert!(line.starts_with("127.0.0.1 - - [") && !line.contains("kong_request_id"), "{line}");
}

#[test]
fn a_log_format_we_do_not_write_or_a_file_we_cannot_open_is_refused_by_name() {
    let (dir, _) = conf_dir(&["proxy_access_log = logs/access.log my_format".into()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("kong.conf:1: proxy_access_log = \"logs/access.log my_format\": log format `my_format` is not one the gateway writes"),
        "{err}"
    );

    let echo = EchoServer::start();
    let dir = DbLess::dir(free_port(), &yaml(&echo), &["proxy_access_log = /proc/self/no/such/access.log".into()]);
    let out = run(dir.path(), &["-c", "kong.conf"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("proxy_access_log: cannot open /proc/self/no/such/access.log"), "{err}");
}

#[test]
fn the_nodes_messages_go_to_kongs_error_log_files_and_sigusr1_reopens_them() {
    let closed = free_port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: down\n  url: http://127.0.0.1:{closed}\n  routes: [{{name: r, paths: [/]}}]\n"
    );
    let port = free_port();
    let dir = DbLess::dir(port, &yaml, &[]);
    // Kong's defaults, in place of the harness's /dev/stderr.
    let kongs = [
        ("KONG_PROXY_ERROR_LOG", "logs/error.log"),
        ("KONG_ADMIN_ERROR_LOG", "logs/error.log"),
        ("KONG_STATUS_ERROR_LOG", "logs/status_error.log"),
    ];
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &kongs);
    let file = dir.path().join("servroot/logs/error.log");
    node.wait_for_log(&format!("gateway: logging to {} (proxy_error_log)", file.display()));
    poll("`gateway started` in logs/error.log", DEADLINE, || {
        std::fs::read_to_string(&file).unwrap_or_default().contains("gateway started").then_some(())
    });
    let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(http_request(proxy, "GET", "/", &[]).unwrap().status, 502);
    poll("the failed upstream request in logs/error.log", DEADLINE, || {
        std::fs::read_to_string(&file).unwrap_or_default().contains("upstream request failed").then_some(())
    });
    assert!(!node.log().contains("gateway started"), "the messages went to stderr too: {}", node.log());
    use std::os::unix::fs::PermissionsExt;
    let prefix_mode = std::fs::metadata(dir.path().join("servroot")).unwrap().permissions().mode() & 0o777;
    assert_eq!(prefix_mode, 0o700, "the logs' directory is made inside a 0700 prefix");

    std::fs::rename(&file, file.with_extension("log.1")).unwrap();
    node.signal("USR1");
    poll("the reopened logs/error.log", DEADLINE, || {
        std::fs::read_to_string(&file).unwrap_or_default().contains("SIGUSR1: reopened the error logs").then_some(())
    });
    let before = std::fs::read_to_string(file.with_extension("log.1")).unwrap();
    assert!(before.contains("upstream request failed") && !before.contains("SIGUSR1"), "{before}");
}

#[test]
fn an_error_log_cannot_be_turned_off() {
    let (dir, _) = conf_dir(&["log_level = info".into()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[("KONG_PROXY_ERROR_LOG", "off")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("environment variable KONG_PROXY_ERROR_LOG: proxy_error_log = \"off\": an error log cannot be turned off: name a file, /dev/stderr or /dev/null"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_node_that_cannot_start_says_why_on_stderr_even_when_it_logs_to_a_file() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = DbLess::dir(port, "_format_version: '3.0'\n", &[]);
    let out = run(dir.path(), &["-c", "kong.conf"], &[("KONG_PROXY_ERROR_LOG", "logs/error.log")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Error: ") && err.contains("proxy_listen"), "{err}");
    let logged = std::fs::read_to_string(dir.path().join("servroot/logs/error.log")).unwrap();
    assert!(logged.contains("proxy_listen"), "and in the log: {logged}");
}
