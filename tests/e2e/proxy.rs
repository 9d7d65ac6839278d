//! The proxy path on a DB-less node: routing decisions (the shared matching cases), what reaches
//! the upstream, and Kong's answers when no route, service or upstream fits.

use std::net::SocketAddr;
use std::sync::Mutex;

use gateway_tests::{DEADLINE, DbLess, EchoServer, Gateway, free_port, http_request, poll};
use router_core::cases;

fn dbless(yaml: &str) -> DbLess {
    DbLess::start(yaml, &[])
}

fn yaml_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap()
}

/// One case as a declarative file: a service per route, all on the echo server.
fn case_yaml(case: &cases::Case, echo: SocketAddr, port: u16) -> String {
    let mut out = String::from("_format_version: \"3.0\"\nservices:\n");
    for (i, r) in case.routes.iter().enumerate() {
        let path = r.service_path.clone().unwrap_or_default();
        out += &format!("- name: svc{i}\n  url: http://{echo}{path}\n  routes:\n  - name: {}\n", r.name);
        let fields = [
            ("methods", &r.methods),
            ("hosts", &r.hosts_for(port)),
            ("paths", &r.paths),
            ("snis", &r.snis),
            ("protocols", &r.protocols),
        ];
        for (field, values) in fields {
            if !values.is_empty() {
                out += &format!("    {field}: {}\n", yaml_list(values));
            }
        }
        if !r.headers.is_empty() {
            out += &format!("    headers: {}\n", serde_json::to_string(&r.headers).unwrap());
        }
        out += &format!("    regex_priority: {}\n", r.regex_priority);
        out += &format!("    strip_path: {}\n", r.strip_path.unwrap_or(true));
        if let Some(handling) = &r.path_handling {
            out += &format!("    path_handling: {handling}\n");
        }
    }
    out
}

#[test]
fn every_shared_matching_case_routes_the_same_through_the_binary() {
    let echo = EchoServer::start();
    // TLS-only cases need a client that sends SNI; the component tests cover them.
    let all: Vec<cases::Case> = cases::load().into_iter().filter(|c| c.request.sni.is_none()).collect();
    assert!(all.len() >= 60, "{} cases", all.len());
    let queue = Mutex::new(all.iter().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let Some(case) = queue.lock().unwrap().pop() {
                    if let Some(failure) = run_case(case, echo.addr) {
                        failures.lock().unwrap().push(failure);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

fn run_case(case: &cases::Case, echo: SocketAddr) -> Option<String> {
    let port = free_port();
    let node = DbLess::start_at(port, &case_yaml(case, echo, port), &[]);
    let host = case.request.host.clone();
    let mut headers: Vec<(&str, &str)> = vec![("Host", &host), ("Kong-Debug", "1")];
    headers.extend(case.request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let reply = match http_request(node.proxy, &case.request.method, &case.request.path, &headers) {
        Ok(reply) => reply,
        Err(e) => return Some(format!("{}: request failed: {e}", case.name)),
    };
    let got_route = reply.header("kong-route-name").map(str::to_string);
    let mut wrong = Vec::new();
    if got_route != case.expect.route {
        wrong.push(format!("route {got_route:?} (status {}), expected {:?}", reply.status, case.expect.route));
    }
    if case.expect.route.is_none() && reply.status != 404 {
        wrong.push(format!("status {}, expected 404", reply.status));
    }
    if let (Some(want), Some(_)) = (&case.expect.upstream_path, &got_route) {
        let seen = reply.json()["path"].as_str().unwrap_or_default().to_string();
        if &seen != want {
            wrong.push(format!("upstream saw path {seen:?}, expected {want:?}"));
        }
    }
    (!wrong.is_empty()).then(|| format!("{}: {}", case.name, wrong.join("; ")))
}

#[test]
fn the_upstream_gets_the_service_host_path_and_forwarding_headers() {
    let echo = EchoServer::start();
    let node = dbless(&format!(
        "_format_version: '3.0'\nservices:\n- name: api\n  url: http://{echo}/base\n  routes:\n  - {{name: strip, paths: [/api]}}\n  - {{name: keep, paths: [/keep], strip_path: false, preserve_host: true}}\n",
        echo = echo.addr
    ));
    let reply = http_request(
        node.proxy,
        "GET",
        "/api/items?x=1",
        &[
            ("Host", "client.test:1234"),
            ("X-Forwarded-For", "10.0.0.9"),
            ("Connection", "close, X-Drop"),
            ("X-Drop", "1"),
        ],
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = reply.json();
    assert_eq!(seen["path"], "/base/items?x=1");
    let h = &seen["headers"];
    assert_eq!(h["host"], echo.addr.to_string());
    // The client is not in trusted_ips: its X-Forwarded-For is replaced (hostile_clients has more).
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "client.test");
    assert_eq!(h["x-forwarded-port"], node.proxy.port().to_string());
    assert_eq!(h["x-forwarded-path"], "/api/items");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert!(h["via"].as_str().unwrap().contains("gateway/"), "{h}");
    assert!(h.get("x-drop").is_none(), "a header named in Connection is hop-by-hop: {h}");
    assert!(reply.header("via").is_some_and(|v| v.contains("gateway/")));

    let reply = http_request(node.proxy, "GET", "/keep/x", &[("Host", "client.test")]).unwrap();
    let seen = reply.json();
    assert_eq!(seen["path"], "/base/keep/x");
    assert_eq!(seen["headers"]["host"], "client.test");
    drop(node.gateway);
}

/// An `ipv6only=off` listener takes IPv4 clients as `::ffff:a.b.c.d`: each is still its IPv4
/// address to the forwarding headers and to ip-restriction, so a deny of 127.0.0.1 holds.
#[test]
fn an_ipv4_client_of_a_dual_stack_listener_is_its_ipv4_address() {
    let echo = EchoServer::start();
    let port = free_port();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: api\n  url: http://{}\n  routes:\n  - {{name: open, paths: [/open]}}\n  - name: shut\n    paths: [/shut]\n    plugins: [{{name: ip-restriction, config: {{deny: [127.0.0.1]}}}}]\n",
        echo.addr
    );
    // The IPv4-mapped loopback address: an IPv6 socket that clients of 127.0.0.1 reach, when it
    // is not v6-only (nginx's default, and so this gateway's, is v6-only).
    let node = DbLess::start_at(port, &yaml, &[format!("proxy_listen = [::ffff:127.0.0.1]:{port} ipv6only=off")]);
    let open = http_request(node.proxy, "GET", "/open", &[]).unwrap();
    assert_eq!(open.status, 200, "{open:?}");
    let seen = open.json();
    assert_eq!(seen["headers"]["x-real-ip"], "127.0.0.1", "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1", "{seen}");
    let shut = http_request(node.proxy, "GET", "/shut", &[]).unwrap();
    assert_eq!(shut.status, 403, "{shut:?}");
}

#[test]
fn kong_answers_when_nothing_fits() {
    let echo = EchoServer::start();
    let closed = free_port();
    let node = dbless(&format!(
        r#"_format_version: "3.0"
services:
- name: down
  url: http://127.0.0.1:{closed}
  retries: 2
  routes: [{{name: down, paths: [/down]}}]
- name: slow
  url: http://{echo}
  read_timeout: 300
  routes: [{{name: slow, paths: [/slow], strip_path: false}}]
- name: secure
  url: http://{echo}
  routes: [{{name: secure, paths: [/secure], protocols: [https]}}]
routes:
- name: lonely
  paths: [/lonely]
"#,
        echo = echo.addr
    ));
    let check = |path: &str, status: u16, message: &str| {
        let reply = http_request(node.proxy, "GET", path, &[("Accept", "application/json")]).unwrap();
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.json()["message"], message, "{path}");
        reply
    };
    check("/nothing", 404, "no Route matched with those values");
    check("/lonely", 503, "no Service found with those values");
    check("/down", 502, "An invalid response was received from the upstream server");
    check("/slow/3000", 504, "The upstream server is timing out");
    let reply = check("/secure", 426, "Please use HTTPS protocol");
    assert_eq!(reply.header("upgrade"), Some("TLS/1.2, HTTP/1.1"));
    // The node keeps serving after all of that.
    assert_eq!(http_request(node.proxy, "GET", "/slow/1", &[]).unwrap().status, 200);
}

#[test]
fn round_robin_spreads_requests_over_weighted_targets() {
    let (a, b) = (EchoServer::start(), EchoServer::start());
    let node = dbless(&format!(
        "_format_version: '3.0'\nupstreams:\n- name: pool\n  targets:\n  - {{target: '{a}', weight: 100}}\n  - {{target: '{b}', weight: 100}}\nservices:\n- name: s\n  host: pool\n  routes: [{{name: r, paths: [/]}}]\n",
        a = a.addr,
        b = b.addr
    ));
    let ports: Vec<u64> =
        (0..4).map(|_| http_request(node.proxy, "GET", "/", &[]).unwrap().json()["port"].as_u64().unwrap()).collect();
    let (pa, pb) = (u64::from(a.addr.port()), u64::from(b.addr.port()));
    assert_eq!(ports.iter().filter(|&&p| p == pa).count(), 2, "{ports:?}");
    assert_eq!(ports.iter().filter(|&&p| p == pb).count(), 2, "{ports:?}");
    assert_ne!(ports[0], ports[1], "alternates: {ports:?}");
}

#[test]
fn an_invalid_declarative_file_stops_the_start_naming_the_entity() {
    let port = free_port();
    let dir = DbLess::dir(
        port,
        "_format_version: '3.0'\nservices:\n- name: s\n  host: h.test\n  routes:\n  - paths: [/ok, nope]\n",
        &[],
    );
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    let exit = gateway.wait_exit(DEADLINE);
    assert_eq!(exit.code(), Some(1));
    assert!(gateway.log().contains("services[0].routes[0].paths[1]: must start with / or ~/"), "{}", gateway.log());
    poll("the port to stay closed", DEADLINE, || {
        std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err().then_some(())
    });
}

/// The README's DB-less example: the shipped conf/dbless.conf serving the shipped conf/kong.yml, with
/// its ports moved to free ones (environment overrides) and its upstreams pointed at echo servers.
#[test]
fn the_shipped_dbless_conf_serves_the_shipped_kong_yml() {
    let (httpbin, echo_a, echo_b) = (EchoServer::start(), EchoServer::start(), EchoServer::start());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let root = gateway_tests::repo_root();
    std::fs::copy(root.join("conf/dbless.conf"), dir.path().join("conf/dbless.conf")).unwrap();
    let yaml = std::fs::read_to_string(root.join("conf/kong.yml")).unwrap();
    assert!(yaml.contains("127.0.0.1:9000") && yaml.contains("127.0.0.1:9001") && yaml.contains("127.0.0.1:9002"));
    let yaml = yaml
        .replace("127.0.0.1:9000", &httpbin.addr.to_string())
        .replace("127.0.0.1:9001", &echo_a.addr.to_string())
        .replace("127.0.0.1:9002", &echo_b.addr.to_string());
    std::fs::write(dir.path().join("conf/kong.yml"), yaml).unwrap();
    let (proxy, tls, status) = (free_port(), free_port(), free_port());
    let listen = format!("127.0.0.1:{proxy}, 127.0.0.1:{tls} http2 ssl");
    let status_listen = format!("127.0.0.1:{status}");
    let mut gateway = Gateway::start(
        dir.path(),
        &["-c", "conf/dbless.conf"],
        &[("KONG_PROXY_LISTEN", &listen), ("KONG_STATUS_LISTEN", &status_listen)],
    );
    gateway.wait_for_log("gateway started");
    let proxy = SocketAddr::from(([127, 0, 0, 1], proxy));
    let status = SocketAddr::from(([127, 0, 0, 1], status));

    let ready = gateway_tests::http_get(status, "/status/ready").unwrap();
    assert_eq!(ready.status, 200, "{ready:?}");
    let reply = http_request(proxy, "GET", "/httpbin/get", &[]).unwrap();
    assert_eq!((reply.status, reply.json()["path"].as_str()), (200, Some("/anything/get")));
    let reply = http_request(proxy, "GET", "/v2/httpbin", &[]).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let ports: Vec<u64> = (0..2)
        .map(|_| {
            http_request(proxy, "GET", "/", &[("Host", "echo.localhost")]).unwrap().json()["port"].as_u64().unwrap()
        })
        .collect();
    assert!(ports.contains(&u64::from(echo_a.addr.port())) && ports.contains(&u64::from(echo_b.addr.port())));
    assert_eq!(http_request(proxy, "GET", "/nowhere", &[]).unwrap().status, 404);
}
