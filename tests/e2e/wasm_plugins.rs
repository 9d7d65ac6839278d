//! Plugins running on the real binary: user plugins from `wasm_plugins_path`, configured over the
//! Admin API, `POST /config` and declarative files; Kong's precedence; a plugin's own response;
//! hostile plugins failing only their own requests under parallel load.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gateway_tests::{
    DEADLINE, DbLess, EchoServer, Exchange, Gateway, free_port, http_json, http_request, poll, wasm_fixture,
};
use serde_json::{Value, json};

/// A directory `plugins/` in `dir` holding the named test fixtures as `NAME.wasm`.
pub(crate) fn plugin_dir(dir: &Path, fixtures: &[&str]) -> String {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for name in fixtures {
        std::fs::copy(wasm_fixture(name), plugins.join(format!("{name}.wasm"))).unwrap();
    }
    plugins.display().to_string()
}

pub(crate) struct Node {
    pub(crate) gateway: Gateway,
    pub(crate) proxy: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// A traditional node (LMDB store, Admin API) running the bundled plugins and the test fixtures
/// `fixtures`.
fn traditional(dir: &Path, fixtures: &[&str]) -> Node {
    plugin_dir(dir, fixtures);
    traditional_with(dir, fixtures)
}

/// A traditional node running the bundled plugins and `names`, each a `NAME.wasm` in `dir/plugins`.
pub(crate) fn traditional_with(dir: &Path, names: &[&str]) -> Node {
    let (proxy, admin) = (free_port(), free_port());
    let plugins = dir.join("plugins").display().to_string();
    let lines = [
        "prefix = servroot".to_string(),
        format!("proxy_listen = 127.0.0.1:{proxy}"),
        format!("admin_listen = 127.0.0.1:{admin}"),
        "status_listen = off".into(),
        format!("wasm_plugins_path = {plugins}"),
        format!("plugins = bundled, {}", names.join(", ")),
    ];
    std::fs::write(dir.join("kong.conf"), lines.join("\n") + "\n").unwrap();
    let mut gateway = Gateway::start(dir, &["-c", "kong.conf"], &[]);
    gateway.wait_for_log("gateway started");
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    Node { gateway, proxy: at(proxy), admin: at(admin) }
}

pub(crate) fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Exchange {
    http_request(addr, "GET", path, headers).unwrap()
}

/// What the echo upstream saw of header `name` (absent: `None`).
pub(crate) fn upstream_header(reply: &Exchange, name: &str) -> Option<String> {
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["headers"][name].as_str().map(str::to_string)
}

pub(crate) fn created(reply: Exchange) -> Value {
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.json()
}

#[test]
fn a_user_plugin_configured_over_the_admin_api_runs_on_its_route_only() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = traditional(dir.path(), &["template"]);
    let url = format!("http://{}", echo.addr);
    created(http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": url})));
    created(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "a", "paths": ["/a"]})));
    created(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "b", "paths": ["/b"]})));

    let plugin = created(http_json(
        node.admin,
        "POST",
        "/routes/a/plugins",
        &json!({"name": "template", "config": {"header_value": "on-a"}}),
    ));
    // The defaults the plugin's check-config filled in, and Kong's default protocols.
    assert_eq!(plugin["config"], json!({"header_name": "X-Template", "header_value": "on-a"}));
    assert_eq!(plugin["protocols"], json!(["grpc", "grpcs", "http", "https"]));
    assert_eq!(plugin["enabled"], json!(true));
    let id = plugin["id"].as_str().unwrap();
    assert_eq!(get(node.admin, &format!("/plugins/{id}"), &[]).json()["config"], plugin["config"]);

    assert_eq!(upstream_header(&get(node.proxy, "/a", &[]), "x-template").as_deref(), Some("on-a"));
    assert_eq!(upstream_header(&get(node.proxy, "/b", &[]), "x-template"), None, "not configured on route b");

    // Disabled, it stops running; enabled again, it runs.
    let patched = http_json(node.admin, "PATCH", &format!("/plugins/{id}"), &json!({"enabled": false}));
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(upstream_header(&get(node.proxy, "/a", &[]), "x-template"), None);
    http_json(node.admin, "PATCH", &format!("/plugins/{id}"), &json!({"enabled": true}));
    assert_eq!(upstream_header(&get(node.proxy, "/a", &[]), "x-template").as_deref(), Some("on-a"));

    // What the node runs, as Kong lists it.
    let enabled = get(node.admin, "/plugins/enabled", &[]).json()["enabled_plugins"].clone();
    let enabled: Vec<&str> = enabled.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let bundled = [
        "acl",
        "basic-auth",
        "correlation-id",
        "cors",
        "ip-restriction",
        "jwt",
        "key-auth",
        "prometheus",
        "rate-limiting",
        "request-size-limiting",
        "request-termination",
        "request-transformer",
        "response-transformer",
    ];
    let mut want: Vec<&str> = bundled.into_iter().chain(["template"]).collect();
    want.sort_unstable();
    assert_eq!(enabled, want, "every bundled plugin and the user's, by name");
    for name in bundled {
        let schema = get(node.admin, &format!("/plugins/schema/{name}"), &[]);
        assert_eq!(schema.status, 200, "{name}: {schema:?}");
        let fields = schema.json()["fields"].clone();
        let config = fields.as_array().unwrap().iter().find_map(|f| f.get("config")).cloned();
        assert!(config.is_some_and(|c| c["fields"].as_array().is_some_and(|f| !f.is_empty())), "{name}: {fields}");
    }
    let root = get(node.admin, "/", &[]).json();
    assert_eq!(root["plugins"]["available_on_server"]["template"], json!({"version": "0.1.0", "priority": 1000}));
    let schema = get(node.admin, "/plugins/schema/template", &[]).json();
    let config = schema["fields"].as_array().unwrap().iter().find_map(|f| f.get("config")).unwrap().clone();
    assert!(
        config["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"header_name": {"type": "string", "default": "X-Template"}})),
        "{config}"
    );
    assert_eq!(get(node.admin, "/plugins/schema/nope", &[]).status, 404);

    // A bad configuration is refused at write time, naming the field, and nothing changes.
    let bad = http_json(
        node.admin,
        "POST",
        "/routes/b/plugins",
        &json!({"name": "template", "config": {"header_name": "not a name", "extra": 1}}),
    );
    assert_eq!(bad.status, 400, "{bad:?}");
    let fields = &bad.json()["fields"]["config"];
    assert!(fields["header_name"].as_str().unwrap().contains("bad header name"), "{fields}");
    assert_eq!(fields["extra"], "unknown field");
    let unsupported =
        http_json(node.admin, "POST", "/routes/b/plugins", &json!({"name": "template", "protocols": ["tcp"]}));
    assert_eq!(unsupported.status, 400, "{unsupported:?}");
    assert_eq!(get(node.admin, "/plugins", &[]).json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(upstream_header(&get(node.proxy, "/b", &[]), "x-template"), None);

    // POST /config with the same mistake is refused whole: the running config stays.
    let doc = json!({
        "_format_version": "3.0",
        "services": [{"name": "s", "url": url, "routes": [{"name": "only", "paths": ["/only"]}]}],
        "plugins": [{"name": "template", "config": {"header_name": "not a name"}}],
    });
    let refused = http_json(node.admin, "POST", "/config", &doc);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body.contains("bad header name"), "{}", refused.body);
    assert_eq!(upstream_header(&get(node.proxy, "/a", &[]), "x-template").as_deref(), Some("on-a"));
    assert_eq!(get(node.proxy, "/only", &[]).status, 404);
    drop(node.gateway);
}

#[test]
fn the_most_specific_plugin_entity_wins_by_kongs_precedence() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = traditional(dir.path(), &["template", "who"]);
    let url = format!("http://{}", echo.addr);
    let s = created(http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": url})));
    let other = created(http_json(node.admin, "POST", "/services", &json!({"name": "other", "url": url})));
    created(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "r", "paths": ["/r"]})));
    created(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "r2", "paths": ["/r2"]})));
    created(http_json(node.admin, "POST", "/services/other/routes", &json!({"name": "o", "paths": ["/o"]})));
    let alice = created(http_json(node.admin, "POST", "/consumers", &json!({"username": "alice"})));
    let bob = created(http_json(node.admin, "POST", "/consumers", &json!({"username": "bob"})));
    created(http_json(node.admin, "POST", "/plugins", &json!({"name": "who"})));
    let add = |path: &str, body: Value| created(http_json(node.admin, "POST", path, &body));
    let template = |value: &str| json!({"name": "template", "config": {"header_value": value}});
    add("/plugins", template("global"));
    add("/services/s/plugins", template("service"));
    add("/routes/r/plugins", template("route"));
    add("/consumers/alice/plugins", template("consumer"));
    let mut both = template("consumer+route");
    both["route"] = json!({"name": "r"});
    add("/consumers/alice/plugins", both);
    let _ = (s, other, bob.clone());

    let value = |path: &str, consumer: Option<&Value>| {
        let id = consumer.map(|c| c["id"].as_str().unwrap().to_string());
        let headers: Vec<(&str, &str)> = id.iter().map(|id| ("X-Consumer-Id", id.as_str())).collect();
        upstream_header(&get(node.proxy, path, &headers), "x-template").unwrap()
    };
    assert_eq!(value("/r", None), "route", "route beats service and global");
    assert_eq!(value("/r2", None), "service", "service beats global");
    assert_eq!(value("/o", None), "global");
    assert_eq!(value("/r", Some(&alice)), "consumer+route", "consumer+route beats route and consumer");
    assert_eq!(value("/r2", Some(&alice)), "consumer", "consumer beats service");
    assert_eq!(value("/o", Some(&alice)), "consumer", "consumer beats global");
    assert_eq!(value("/r", Some(&bob)), "route", "another consumer's entities do not apply");
    drop(node.gateway);
}

#[test]
fn a_declarative_file_with_a_bad_plugin_config_stops_the_start_naming_the_field() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path(), &["template"]);
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n  - name: r\n    paths: [/r]\n    plugins:\n    - name: template\n      config:\n        header_name: 'not a name'\n",
        echo.addr
    );
    let port = free_port();
    let conf_dir =
        DbLess::dir(port, &yaml, &[format!("wasm_plugins_path = {plugins}"), "plugins = bundled,template".into()]);
    let out = gateway_tests::run(conf_dir.path(), &["-c", "kong.conf"], &[]);
    assert!(!out.status.success());
    let err = gateway_tests::stderr(&out);
    assert!(err.contains("services[0].routes[0].plugins[0].config.header_name"), "{err}");
    assert!(err.contains("bad header name"), "{err}");

    // An unknown plugin name in `plugins` is refused at start, with a hint.
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, format!("plugins = bundled, nope\nwasm_plugins_path = {plugins}\n")).unwrap();
    let out = gateway_tests::run(dir.path(), &["check", "bad.conf"], &[]);
    assert!(!out.status.success());
    let err = gateway_tests::stderr(&out);
    assert!(err.contains("plugins") && err.contains("unknown plugin nope"), "{err}");
}

#[test]
fn a_plugin_ending_the_request_in_access_answers_and_log_still_runs() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path(), &["probe"]);
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n  - name: r\n    paths: [/r]\n    plugins:\n    - name: probe\n      config: {{exit_status: 418, exit_body: short and stout, tag: teapot}}\n  - name: free\n    paths: [/free]\n    plugins:\n    - name: probe\n      config: {{tag: free}}\n",
        echo.addr
    );
    let node = DbLess::start(
        &yaml,
        &[
            format!("wasm_plugins_path = {plugins}"),
            "plugins = bundled,probe".into(),
            "log_level = info".into(),
            "trusted_ips = 127.0.0.1/32".into(),
            "real_ip_header = X-Forwarded-For".into(),
        ],
    );
    let seen = echo.seen.load(Ordering::SeqCst);
    let reply = get(node.proxy, "/r", &[]);
    assert_eq!((reply.status, reply.body.as_str()), (418, "short and stout"), "{reply:?}");
    assert_eq!(reply.header("x-probe-exit"), Some("1"));
    assert_eq!(reply.header("x-probe-seen"), Some("teapot"), "header_filter ran on the plugin's response");
    assert_eq!(echo.seen.load(Ordering::SeqCst), seen, "the upstream was not asked");
    let mut gateway = node.gateway;
    gateway.wait_for_log("probe log status=418 tag=teapot");
    // Plugins see the client's address as the gateway trusts it (trusted_ips, real_ip_header).
    let free = get(node.proxy, "/free", &[("X-Forwarded-For", "203.0.113.9")]);
    assert_eq!(upstream_header(&free, "x-probe-client").as_deref(), Some("203.0.113.9"));
    assert_eq!(upstream_header(&get(node.proxy, "/free", &[]), "x-probe-client").as_deref(), Some("127.0.0.1"));
}

#[test]
fn the_bundled_plugins_run_correlation_id_and_request_termination() {
    let echo = EchoServer::start();
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n  - name: r\n    paths: [/r]\n  - name: closed\n    paths: [/closed]\n    plugins:\n    - name: request-termination\n      config: {{status_code: 403, message: So long}}\nplugins:\n- name: correlation-id\n  config: {{echo_downstream: true}}\n",
        echo.addr
    );
    let node = DbLess::start(&yaml, &[]);
    let reply = get(node.proxy, "/r", &[]);
    let id = upstream_header(&reply, "kong-request-id").expect("correlation-id sets the header upstream");
    assert_eq!(reply.header("kong-request-id"), Some(id.as_str()), "echoed downstream");
    let next = upstream_header(&get(node.proxy, "/r", &[]), "kong-request-id").unwrap();
    assert_ne!(id, next, "each request gets its own id");
    let kept = get(node.proxy, "/r", &[("Kong-Request-ID", "mine")]);
    assert_eq!(upstream_header(&kept, "kong-request-id").as_deref(), Some("mine"), "a client's id is kept");

    let closed = get(node.proxy, "/closed", &[]);
    assert_eq!(closed.status, 403, "{closed:?}");
    assert_eq!(closed.json(), json!({"message": "So long"}));
    assert!(closed.header("kong-request-id").is_some(), "the global plugin's header_filter ran on the exit");
}

/// Each hostile plugin fails only its own requests (500, Kong's body) while a parallel load on a
/// clean route sees no error at all; the node stays up and its log stays bounded.
#[test]
fn hostile_plugins_fail_only_their_own_requests_under_parallel_load() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path(), &["hostile"]);
    let route = |name: &str, mode: &str| {
        format!(
            "  - name: {name}\n    paths: [/{name}]\n    plugins:\n    - name: hostile\n      config: {{mode: {mode}}}\n"
        )
    };
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n  - name: clean\n    paths: [/clean]\n{}{}{}{}",
        echo.addr,
        route("trap", "trap"),
        route("loop", "loop"),
        route("grow", "grow"),
        route("always", "always"),
    );
    let node = DbLess::start(
        &yaml,
        &[
            format!("wasm_plugins_path = {plugins}"),
            "plugins = bundled,hostile".into(),
            // Generous enough that filling the memory cap (page faults on a busy VM) never runs
            // into it: `grow` must be stopped by the cap, `loop` by the budget.
            "wasm_plugin_timeout = 400".into(),
            "wasm_plugin_max_memory = 8m".into(),
        ],
    );
    let proxy = node.proxy;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http_request(proxy, "GET", "/clean", &[]) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("clean route failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();

    let unexpected = json!("An unexpected error occurred");
    for (path, mode) in [("/trap", "trap"), ("/loop", "loop"), ("/grow", "grow")] {
        for _ in 0..2 {
            let reply = get(proxy, path, &[("x-hostile", mode), ("Accept", "application/json")]);
            assert_eq!((reply.status, reply.json()["message"].clone()), (500, unexpected.clone()), "{mode}");
            // The same plugin, not asked to misbehave, serves the next request.
            assert_eq!(get(proxy, path, &[]).status, 200, "{mode}: a fresh instance serves the next request");
        }
    }
    for _ in 0..100 {
        let reply = get(proxy, "/always", &[]);
        assert_eq!(reply.status, 500, "{reply:?}");
    }
    poll("the clean route to have served under load", DEADLINE, || (ok.load(Ordering::Relaxed) >= 50).then_some(()));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "the clean route never failed");

    let log = node.gateway.log();
    for (needle, what) in [("trap requested", "the trap"), ("memory", "the memory cap"), ("interrupt", "the deadline")]
    {
        assert!(log.to_lowercase().contains(needle), "{what} is logged:\n{log}");
    }
    let always = log.lines().filter(|l| l.contains("trapping on every call")).count();
    assert!(
        (1..=10).contains(&always),
        "an always-trapping plugin is logged a bounded number of times: {always}\n{log}"
    );
    assert!(log.contains("plugin keeps trapping"), "{log}");
    assert_eq!(get(proxy, "/clean", &[]).status, 200, "the node is still up");
}

/// Sends a chunked request carrying `chunks` and reads the whole answer.
fn send_chunked(addr: SocketAddr, path: &str, chunks: &[&str]) -> Exchange {
    gateway_tests::http_send_chunked(addr, path, chunks).unwrap()
}

#[test]
fn a_plugin_reads_and_replaces_the_request_body_and_the_upstream_still_gets_all_of_it() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path(), &["probe"]);
    let route = |name: &str, config: &str| {
        format!("  - name: {name}\n    paths: [/{name}]\n    plugins:\n    - name: probe\n      config: {config}\n")
    };
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n{}{}{}",
        echo.addr,
        route("read", "{read_body: 16}"),
        route("small", "{read_body: 4}"),
        route("set", "{read_body: 1024, set_body: replaced}"),
    );
    let node = DbLess::start(
        &yaml,
        &[
            format!("wasm_plugins_path = {plugins}"),
            "plugins = bundled,probe".into(),
            "nginx_http_client_max_body_size = 1k".into(),
        ],
    );
    let post = |path: &str, body: &str| {
        gateway_tests::http_send(node.proxy, "POST", path, &[], Some(body.as_bytes())).unwrap()
    };
    let seen = |reply: &Exchange| (upstream_header(reply, "x-probe-body"), reply.json()["body_len"].as_u64());

    // Read whole, then sent upstream as it came.
    assert_eq!(seen(&post("/read", "hello")), (Some("5".into()), Some(5)));
    assert_eq!(seen(&send_chunked(node.proxy, "/read", &["hello ", "world"])), (Some("11".into()), Some(11)));
    assert_eq!(seen(&get(node.proxy, "/read", &[])), (Some("0".into()), Some(0)));
    // Longer than the plugin asked for: a declared length is not read at all; a chunked body is
    // read no further than needed, and the upstream still gets every byte.
    assert_eq!(seen(&post("/small", "hello world")), (Some("too-large 11".into()), Some(11)));
    let chunked = send_chunked(node.proxy, "/small", &["hello ", "world"]);
    let (told, len) = seen(&chunked);
    assert!(told.as_deref().is_some_and(|t| t.starts_with("too-large ")), "{chunked:?}");
    assert_eq!(len, Some(11));
    // Replaced: the upstream gets the plugin's body, with its length.
    assert_eq!(seen(&post("/set", "the client's")), (Some("12".into()), Some(8)));
    assert_eq!(seen(&send_chunked(node.proxy, "/set", &["a", "b"])), (Some("2".into()), Some(8)));
    // The node's own limit holds while reading for a plugin: 413, declared or not.
    let big = "x".repeat(2000);
    assert_eq!(post("/set", &big).status, 413);
    assert_eq!(send_chunked(node.proxy, "/set", &[&big[..1000], &big[1000..]]).status, 413);
}
