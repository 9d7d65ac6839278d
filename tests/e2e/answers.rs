//! What the gateway says itself: Kong's `headers` and `headers_upstream` (`Via`, `Server`, the
//! latencies, `X-Kong-Request-Id`, also in the access log), and its error answers in Kong's
//! templates, chosen from `Accept` (`error_default_type`, `error_template_*`).

use std::net::SocketAddr;

use gateway_tests::{DEADLINE, DbLess, EchoServer, Exchange, conf_dir, free_port, http_request, poll, run, stderr};

fn yaml(echo: &EchoServer) -> String {
    format!(
        "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://{}\n  routes: [{{name: r, paths: [/echo]}}]\n- name: down\n  url: http://127.0.0.1:{}\n  routes: [{{name: d, paths: [/down]}}]\n",
        echo.addr,
        free_port() // nothing listens there
    )
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Exchange {
    http_request(addr, "GET", path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn is_request_id(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn millis(answer: &Exchange, name: &str) -> u64 {
    let value = answer.header(name).unwrap_or_else(|| panic!("no {name}: {answer:?}"));
    value.parse().unwrap_or_else(|_| panic!("{name}: {value:?} is not a number of ms"))
}

#[test]
fn kongs_default_headers_on_proxied_and_gateway_answers_with_one_request_id_everywhere() {
    let echo = EchoServer::start();
    let node = DbLess::start(&yaml(&echo), &[]);
    // Proxied: Via, Server (the upstream sent none), the two latencies, the request id, which the
    // upstream saw too (a client's own is replaced).
    let proxied = get(node.proxy, "/echo/x", &[("X-Kong-Request-Id", "client-made")]);
    assert_eq!(proxied.status, 200);
    assert_eq!(proxied.header("via"), Some(concat!("1.1 gateway/", env!("CARGO_PKG_VERSION"))));
    assert_eq!(proxied.header("server"), Some(concat!("gateway/", env!("CARGO_PKG_VERSION"))));
    millis(&proxied, "x-kong-proxy-latency");
    millis(&proxied, "x-kong-upstream-latency");
    assert_eq!(proxied.header("x-kong-response-latency"), None);
    assert_eq!(proxied.header("x-kong-upstream-status"), None, "not in Kong's default");
    let id = proxied.header("x-kong-request-id").unwrap().to_string();
    assert!(is_request_id(&id), "{id}");
    assert_eq!(proxied.json()["headers"]["x-kong-request-id"], id.as_str(), "the upstream sees the same id");
    // The gateway's own answer: Server, the response latency and an id of its own; no Via.
    let missing = get(node.proxy, "/nowhere", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("via"), None);
    assert_eq!(missing.header("server"), Some(concat!("gateway/", env!("CARGO_PKG_VERSION"))));
    millis(&missing, "x-kong-response-latency");
    assert_eq!(missing.header("x-kong-proxy-latency"), None);
    let missing_id = missing.header("x-kong-request-id").unwrap().to_string();
    assert!(is_request_id(&missing_id) && missing_id != id);
    // The answer's body (JSON: no Accept) names the same id.
    assert_eq!(missing.json()["request_id"], missing_id.as_str());
    assert_eq!(missing.json()["message"], "no Route matched with those values");
    // The access log's kong_request_id is the header's.
    let log = node.dir.path().join("servroot/logs/access.log");
    let text = poll("two access lines", DEADLINE, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    for (path, id) in [("/echo/x", &id), ("/nowhere", &missing_id)] {
        let line = text.lines().find(|l| l.contains(path)).unwrap();
        assert!(line.ends_with(&format!("kong_request_id: \"{id}\"")), "{line}");
    }
}

#[test]
fn headers_off_hides_them_all_and_a_list_shows_just_those() {
    let echo = EchoServer::start();
    let node = DbLess::start(&yaml(&echo), &["headers = off".into(), "headers_upstream = off".into()]);
    let proxied = get(node.proxy, "/echo/x", &[]);
    let missing = get(node.proxy, "/nowhere", &[]);
    for answer in [&proxied, &missing] {
        for name in [
            "via",
            "server",
            "x-kong-proxy-latency",
            "x-kong-upstream-latency",
            "x-kong-response-latency",
            "x-kong-request-id",
        ] {
            assert_eq!(answer.header(name), None, "{name} with headers = off: {answer:?}");
        }
    }
    assert!(proxied.json()["headers"].get("x-kong-request-id").is_none(), "headers_upstream = off");

    let node = DbLess::start(&yaml(&echo), &["headers = X-Kong-Upstream-Status, server".into()]);
    let proxied = get(node.proxy, "/echo/x", &[]);
    assert_eq!(proxied.header("x-kong-upstream-status"), Some("200"));
    assert_eq!(proxied.header("server"), Some(concat!("gateway/", env!("CARGO_PKG_VERSION"))));
    for name in ["via", "x-kong-proxy-latency", "x-kong-upstream-latency", "x-kong-request-id"] {
        assert_eq!(proxied.header(name), None, "{name}: {proxied:?}");
    }
    assert!(
        is_request_id(proxied.json()["headers"]["x-kong-request-id"].as_str().unwrap()),
        "headers_upstream's default"
    );
}

#[test]
fn the_admin_api_carries_server_and_its_latency_unless_told_not_to() {
    for (extra, shown) in [(None, true), (Some("headers = off"), false)] {
        let admin = free_port();
        let mut lines = vec![format!("admin_listen = 127.0.0.1:{admin}")];
        lines.extend(extra.map(String::from));
        let node = DbLess::start("_format_version: '3.0'\n", &lines);
        let answer = get(SocketAddr::from(([127, 0, 0, 1], admin)), "/", &[]);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("server").is_some(), shown, "{answer:?}");
        assert_eq!(answer.header("x-kong-admin-latency").is_some(), shown, "{answer:?}");
        drop(node);
    }
}

#[test]
fn error_answers_take_the_format_the_client_asks_for() {
    let echo = EchoServer::start();
    let node = DbLess::start(&yaml(&echo), &[]);
    // No route matched (Kong's kong.response.error): Accept, else JSON.
    let html = get(node.proxy, "/nowhere", &[("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")]);
    assert_eq!(html.status, 404);
    assert_eq!(html.header("content-type"), Some("text/html; charset=utf-8"));
    let id = html.header("x-kong-request-id").unwrap();
    assert!(html.body.contains("<p>no Route matched with those values.</p>"), "{}", html.body);
    assert!(html.body.contains(&format!("<p>request_id: {id}</p>")), "{}", html.body);
    let xml = get(node.proxy, "/nowhere", &[("Accept", "application/xml")]);
    assert_eq!(xml.header("content-type"), Some("application/xml; charset=utf-8"));
    assert!(xml.body.contains("<message>no Route matched with those values</message>"), "{}", xml.body);
    let plain = get(node.proxy, "/nowhere", &[("Accept", "text/plain;q=0.9, application/json;q=0.5")]);
    assert_eq!(plain.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(plain.body.starts_with("no Route matched with those values\nrequest_id: "), "{}", plain.body);
    assert_eq!(get(node.proxy, "/nowhere", &[]).header("content-type"), Some("application/json; charset=utf-8"));
    // An upstream that cannot be reached (nginx's error page): Accept, else Content-Type, else
    // error_default_type (Kong's: text/plain).
    let down = get(node.proxy, "/down", &[]);
    assert_eq!(down.status, 502);
    assert_eq!(down.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        down.body.starts_with("An invalid response was received from the upstream server\nrequest_id: "),
        "{}",
        down.body
    );
    let by_type = get(node.proxy, "/down", &[("Content-Type", "application/xml")]);
    assert_eq!(by_type.header("content-type"), Some("application/xml; charset=utf-8"));
    let asked = get(node.proxy, "/down", &[("Accept", "application/json"), ("Content-Type", "application/xml")]);
    assert_eq!(asked.json()["message"], "An invalid response was received from the upstream server");
    drop(node);

    let node = DbLess::start(&yaml(&echo), &["error_default_type = application/json".into()]);
    let down = get(node.proxy, "/down", &[]);
    assert_eq!(down.json()["message"], "An invalid response was received from the upstream server");
}

#[test]
fn custom_error_templates_are_used_and_bad_ones_stop_the_start() {
    let echo = EchoServer::start();
    let templates = tempfile::tempdir().unwrap();
    let plain = templates.path().join("error.txt");
    std::fs::write(&plain, "Sorry (100%%): %s [id %s]\n").unwrap();
    let node = DbLess::start(&yaml(&echo), &[format!("error_template_plain = {}", plain.display())]);
    let down = get(node.proxy, "/down", &[]);
    let id = down.header("x-kong-request-id").unwrap();
    assert_eq!(
        down.body,
        format!("Sorry (100%): An invalid response was received from the upstream server [id {id}]\n")
    );
    // The others keep Kong's.
    let json = get(node.proxy, "/down", &[("Accept", "application/json")]);
    assert_eq!(json.json()["request_id"], id_of(&json));
    drop(node);

    for (name, text, reason) in [
        ("three.html", "%s %s %s", "has 3 `%s`: at most two"),
        ("number.html", "<p>%d</p>", "`%d` is not a placeholder"),
    ] {
        let file = templates.path().join(name);
        std::fs::write(&file, text).unwrap();
        check_refuses(&format!("error_template_html = {}", file.display()), "error_template_html", reason);
    }
    check_refuses(
        "error_template_json = /nonexistent/error.json",
        "error_template_json",
        "cannot read /nonexistent/error.json",
    );
    check_refuses("error_default_type = text/css", "error_default_type", "must be one of: application/json");
    check_refuses("headers = X-Powered-By", "headers", "invalid entry `x-powered-by`");
}

#[test]
fn plugins_error_answers_are_the_gateways_in_the_format_asked_for_with_the_nodes_templates() {
    // Kong's plugins answer with kong.response.error: Accept (else JSON), the node's templates and
    // the request id. key-auth's challenge stays; jwt's 401 is kong.response.exit, JSON always.
    let echo = EchoServer::start();
    let templates = tempfile::tempdir().unwrap();
    let plain = templates.path().join("error.txt");
    std::fs::write(&plain, "refused: %s (%s)\n").unwrap();
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://{}\n  routes:\n  - name: keys\n    paths: [/keys]\n    plugins: [{{name: key-auth}}]\n  - name: walled\n    paths: [/walled]\n    plugins: [{{name: ip-restriction, config: {{deny: [127.0.0.1], status: 451, message: Go <away>}}}}]\n  - name: tokens\n    paths: [/tokens]\n    plugins: [{{name: jwt}}]\n",
        echo.addr
    );
    let node = DbLess::start(&yaml, &[format!("error_template_plain = {}", plain.display())]);

    let json = get(node.proxy, "/keys", &[]);
    assert_eq!((json.status, json.header("www-authenticate")), (401, Some("Key")), "{json:?}");
    assert_eq!(json.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(json.json()["message"], "No API key found in request");
    assert_eq!(json.json()["request_id"], id_of(&json), "the answer names the request's id");

    let html = get(node.proxy, "/keys", &[("Accept", "text/html")]);
    assert_eq!((html.status, html.header("www-authenticate")), (401, Some("Key")), "{html:?}");
    assert_eq!(html.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(html.body.contains("<p>No API key found in request.</p>"), "{}", html.body);
    assert!(html.body.contains(&format!("<p>request_id: {}</p>", id_of(&html))), "{}", html.body);

    let custom = get(node.proxy, "/keys", &[("Accept", "text/plain")]);
    assert_eq!(custom.body, format!("refused: No API key found in request ({})\n", id_of(&custom)));

    let xml = get(node.proxy, "/walled", &[("Accept", "application/xml")]);
    assert_eq!(xml.status, 451, "{xml:?}");
    assert_eq!(xml.header("content-type"), Some("application/xml; charset=utf-8"));
    assert!(xml.body.contains("<message>Go &lt;away&gt;</message>"), "escaped for XML: {}", xml.body);

    let jwt = get(node.proxy, "/tokens", &[("Accept", "text/html")]);
    assert_eq!((jwt.status, jwt.header("content-type")), (401, Some("application/json; charset=utf-8")), "{jwt:?}");
    assert_eq!(jwt.json(), serde_json::json!({"message": "Unauthorized"}));
}

fn id_of(answer: &Exchange) -> &str {
    answer.header("x-kong-request-id").unwrap()
}

/// `gateway check` refuses the file with `line`, naming `key` and `reason`.
fn check_refuses(line: &str, key: &str, reason: &str) {
    let (dir, _) = conf_dir(&[line.to_string()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    assert_eq!(out.status.code(), Some(1), "{line}");
    let err = stderr(&out);
    assert!(err.contains(&format!("kong.conf:1: {key} = ")) && err.contains(reason), "{line}: {err}");
}
