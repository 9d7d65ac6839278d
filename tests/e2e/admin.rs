//! The Admin API on a traditional node with the embedded store, driven as a Kong user drives it:
//! form and JSON bodies, Kong's answers for every error class, restarts, concurrent writers, a
//! full store, and `/config` export and import.

use std::net::SocketAddr;
use std::path::Path;

use gateway_tests::{DEADLINE, EchoServer, Exchange, Gateway, free_port, http_form, http_json, http_request, poll};
use serde_json::{Value, json};

/// A traditional node started from the shipped conf/kong.conf (the README's), its ports moved to
/// free ones through the environment, in `dir`.
pub(crate) struct Node {
    pub(crate) _gateway: Gateway,
    pub(crate) proxy: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) status: SocketAddr,
}

pub(crate) fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Node {
    let (proxy, admin, status) = (free_port(), free_port(), free_port());
    let conf = gateway_tests::repo_root().join("conf/kong.conf");
    let listen = |p: u16| format!("127.0.0.1:{p}");
    let (p, a, s) = (listen(proxy), listen(admin), listen(status));
    let mut env =
        vec![("KONG_PROXY_LISTEN", p.as_str()), ("KONG_ADMIN_LISTEN", a.as_str()), ("KONG_STATUS_LISTEN", s.as_str())];
    env.extend_from_slice(extra_env);
    let mut gateway = Gateway::start(dir, &["-c", conf.to_str().unwrap()], &env);
    gateway.wait_for_log("gateway started");
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    Node { _gateway: gateway, proxy: at(proxy), admin: at(admin), status: at(status) }
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Exchange {
    http_request(addr, "GET", path, &[]).unwrap()
}

#[test]
fn a_kong_user_configures_the_node_and_it_survives_a_restart() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);

    // curl -d name=echo -d url=… /services ; curl -d paths[]=/api /services/echo/routes
    let created = http_form(node.admin, "POST", "/services", &format!("name=echo&url=http://{}/base", echo.addr));
    assert_eq!(created.status, 201, "{created:?}");
    let service = created.json();
    assert_eq!((service["host"].clone(), service["path"].clone()), (json!("127.0.0.1"), json!("/base")));
    let route = http_form(node.admin, "POST", "/services/echo/routes", "name=api&paths[]=/api&paths[]=/v1");
    assert_eq!(route.status, 201, "{route:?}");
    assert_eq!(route.json()["service"]["id"], service["id"]);

    // The proxy serves it as soon as the write has answered.
    let reply = get(node.proxy, "/api/items");
    assert_eq!((reply.status, reply.json()["path"].clone()), (200, json!("/base/items")));

    // Change the route (JSON this time): the old path is gone, the new one works.
    let patched = http_json(node.admin, "PATCH", "/routes/api", &json!({"paths": ["/new"]}));
    assert_eq!((patched.status, patched.json()["paths"].clone()), (200, json!(["/new"])));
    assert_eq!(get(node.proxy, "/api/items").status, 404);
    assert_eq!(get(node.proxy, "/new/x").json()["path"], "/base/x");

    // PUT by name replaces the service wholly.
    let put = http_json(node.admin, "PUT", "/services/echo", &json!({"url": format!("http://{}/other", echo.addr)}));
    assert_eq!((put.status, put.json()["id"].clone()), (200, service["id"].clone()));
    assert_eq!(get(node.proxy, "/new/x").json()["path"], "/other/x");

    // Lists, items by id and by name.
    let listed = get(node.admin, "/services").json();
    assert_eq!((listed["data"].as_array().unwrap().len(), listed["next"].clone()), (1, Value::Null));
    assert_eq!(get(node.admin, &format!("/services/{}", service["id"].as_str().unwrap())).json()["name"], "echo");
    assert_eq!(get(node.admin, "/services/echo/routes").json()["data"][0]["name"], "api");

    // Restart on the same store: everything is still there and served.
    let hash = get(node.status, "/status").json()["configuration_hash"].clone();
    drop(node);
    let node = start(dir.path(), &[]);
    assert_eq!(get(node.status, "/status").json()["configuration_hash"], hash);
    assert_eq!(get(node.proxy, "/new/x").json()["path"], "/other/x");
    assert_eq!(get(node.admin, "/routes/api").json()["paths"], json!(["/new"]));

    // Delete: the route, then the service; requests get 404.
    assert_eq!(http_request(node.admin, "DELETE", "/routes/api", &[]).unwrap().status, 204);
    assert_eq!(get(node.proxy, "/new/x").status, 404);
    assert_eq!(http_request(node.admin, "DELETE", "/services/echo", &[]).unwrap().status, 204);
    assert_eq!(get(node.admin, "/services/echo").status, 404);
    assert_eq!(get(node.status, "/status/ready").status, 503, "an emptied node is not ready");
}

#[test]
fn every_error_class_has_kongs_status_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let svc = http_json(node.admin, "POST", "/services", &json!({"name": "s", "host": "a.test"}));
    assert_eq!(svc.status, 201);

    // 400: every bad field, nested as in the entity.
    let bad = http_json(
        node.admin,
        "POST",
        "/routes",
        &json!({"paths": ["/ok", "nope"], "methods": ["G E T"], "service": {"name": "s"}}),
    );
    assert_eq!(bad.status, 400, "{bad:?}");
    let body = bad.json();
    assert_eq!(body["name"], "schema violation");
    assert_eq!(body["fields"]["paths"], json!([null, "must start with / or ~/"]));
    assert!(body["fields"]["methods"][0].is_string(), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("2 schema violations"), "{body}");

    // 400: a reference to nothing.
    let dangling = http_json(
        node.admin,
        "POST",
        "/routes",
        &json!({"paths": ["/x"], "service": {"id": "6b4b3c2e-0000-4000-8000-000000000001"}}),
    );
    assert_eq!((dangling.status, dangling.json()["name"].clone()), (400, json!("foreign key violation")));

    // 409: a unique name taken.
    let clash = http_json(node.admin, "POST", "/services", &json!({"name": "s", "host": "b.test"}));
    assert_eq!(clash.status, 409);
    assert_eq!(clash.json()["fields"], json!({"name": "s"}));
    assert_eq!(clash.json()["name"], "unique constraint violation");

    // 400: a service still used by a route cannot go.
    http_json(node.admin, "POST", "/services/s/routes", &json!({"paths": ["/r"]}));
    let blocked = http_request(node.admin, "DELETE", "/services/s", &[]).unwrap();
    assert_eq!(blocked.status, 400);
    assert_eq!(blocked.json()["message"], "an existing 'routes' entity references this 'services' entity");

    // 404, 405, unparsable bodies.
    assert_eq!(get(node.admin, "/services/nope").json()["message"], "Not found");
    assert_eq!(get(node.admin, "/services/nope").status, 404);
    assert_eq!(get(node.admin, "/nothing-here").status, 404);
    assert_eq!(http_request(node.admin, "PATCH", "/services", &[]).unwrap().status, 405);
    let garbled = gateway_tests::http_send(
        node.admin,
        "POST",
        "/services",
        &[("Content-Type", "application/json")],
        Some(b"{nope"),
    )
    .unwrap();
    assert_eq!(garbled.status, 400);
    assert!(garbled.json()["message"].as_str().unwrap().starts_with("Cannot parse JSON body"));
    assert_eq!(get(node.admin, "/services?size=0").status, 400);

    // Nothing of the refused writes was kept.
    assert_eq!(get(node.admin, "/services").json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(get(node.admin, "/routes").json()["data"].as_array().unwrap().len(), 1);
}

#[test]
fn concurrent_writers_lose_nothing_and_pages_cover_everything() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let admin = node.admin;
    std::thread::scope(|scope| {
        for writer in 0..6 {
            scope.spawn(move || {
                for i in 0..10 {
                    let r = http_json(
                        admin,
                        "POST",
                        "/services",
                        &json!({"name": format!("w{writer}-{i}"), "host": "h.test"}),
                    );
                    assert_eq!(r.status, 201, "{r:?}");
                }
            });
        }
        // Meanwhile, tags on one service are patched by several writers: each write lands whole.
        for _ in 0..3 {
            scope.spawn(move || {
                for i in 0..5 {
                    let r = http_json(
                        admin,
                        "PUT",
                        "/services/shared",
                        &json!({"host": "s.test", "tags": [format!("t{i}")]}),
                    );
                    assert_eq!(r.status, 200, "{r:?}");
                }
            });
        }
    });
    let mut names = Vec::new();
    let mut next = Some("/services?size=25".to_string());
    while let Some(path) = next {
        let page = get(admin, &path).json();
        names.extend(page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()));
        next = page["next"].as_str().map(str::to_string);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 61, "60 created plus the shared one");
    let status = get(node.status, "/status").json();
    assert_eq!(status["entities"]["services"], 61);
    let admin_status = get(admin, "/status").json();
    assert_eq!(admin_status["configuration_hash"], status["configuration_hash"], "the proxy serves the newest config");
}

#[test]
fn a_full_store_answers_a_clear_error_and_keeps_serving() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[("KONG_LMDB_MAP_SIZE", "256k")]);
    http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": format!("http://{}", echo.addr)}));
    http_json(node.admin, "POST", "/services/s/routes", &json!({"paths": ["/ok"]}));
    assert_eq!(get(node.proxy, "/ok").status, 200);
    let hash = get(node.status, "/status").json()["configuration_hash"].clone();

    let huge: Vec<String> = (0..400).map(|i| format!("{i}-{}", "x".repeat(1000))).collect();
    let full = http_json(node.admin, "POST", "/services", &json!({"name": "big", "host": "b.test", "tags": huge}));
    assert_eq!(full.status, 500, "{full:?}");
    assert!(full.json()["message"].as_str().unwrap().contains("the store is full: raise lmdb_map_size"), "{full:?}");

    assert_eq!(get(node.admin, "/services/big").status, 404);
    assert_eq!(get(node.status, "/status").json()["configuration_hash"], hash);
    assert_eq!(get(node.proxy, "/ok").status, 200);
    // Small writes still fit.
    assert_eq!(http_json(node.admin, "POST", "/services", &json!({"name": "small", "host": "c.test"})).status, 201);
}

#[test]
fn config_export_and_import_round_trip() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": format!("http://{}", echo.addr)}));
    http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "b", "paths": ["/b"]}));
    http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "a", "paths": ["/a"]}));
    http_json(node.admin, "POST", "/upstreams", &json!({"name": "pool"}));
    http_json(node.admin, "POST", "/upstreams/pool/targets", &json!({"target": "10.0.0.1:80"}));
    let exported = get(node.admin, "/config").json();
    let yaml = exported["config"].as_str().unwrap().to_string();
    let hash = exported["configuration_hash"].clone();
    assert_eq!(get(node.status, "/status").json()["configuration_hash"], hash);

    // Into a fresh node, as the document itself.
    let other_dir = tempfile::tempdir().unwrap();
    let other = start(other_dir.path(), &[]);
    let imported = gateway_tests::http_send(
        other.admin,
        "POST",
        "/config",
        &[("Content-Type", "text/yaml")],
        Some(yaml.as_bytes()),
    )
    .unwrap();
    assert_eq!(imported.status, 201, "{imported:?}");
    assert_eq!(imported.json()["configuration_hash"], hash);
    assert_eq!(get(other.status, "/status").json()["configuration_hash"], hash);
    assert_eq!(get(other.proxy, "/a").status, 200);
    assert_eq!(get(other.admin, "/upstreams/pool/targets").json()["data"][0]["target"], "10.0.0.1:80");

    // A bad document is refused whole, naming the entity, and the running config stays.
    let bad = http_json(
        other.admin,
        "POST",
        "/config",
        &json!({"config": "_format_version: '3.0'\nservices:\n- name: x\n  host: h\n  routes:\n  - paths: [nope]\n"}),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["fields"]["services"][0]["routes"][0]["paths"][0], "must start with / or ~/");
    assert_eq!(get(other.status, "/status").json()["configuration_hash"], hash);
}

#[test]
fn a_dbless_node_changes_only_through_post_config() {
    let echo = EchoServer::start();
    let admin_port = free_port();
    let node = gateway_tests::DbLess::start(
        &format!(
            "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/r]}}]\n",
            echo.addr
        ),
        &[format!("admin_listen = 127.0.0.1:{admin_port}")],
    );
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    assert_eq!(get(admin, "/services/s").json()["name"], "s");
    let refused = http_json(admin, "POST", "/services", &json!({"host": "x.test"}));
    assert_eq!(refused.status, 405);
    assert_eq!(refused.json()["message"], "cannot create 'services' entities when not using a database");
    assert_eq!(http_request(admin, "DELETE", "/routes/r", &[]).unwrap().status, 405);

    let replaced = http_json(
        admin,
        "POST",
        "/config",
        &json!({"_format_version": "3.0", "services": [{"name": "t", "url": format!("http://{}", echo.addr), "routes": [{"paths": ["/t"]}]}]}),
    );
    assert_eq!(replaced.status, 201, "{replaced:?}");
    poll("the new config to be served", DEADLINE, || (get(node.proxy, "/t").status == 200).then_some(()));
    assert_eq!(get(node.proxy, "/r").status, 404);
}

#[test]
fn a_change_does_not_disturb_requests_in_flight() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": format!("http://{}", echo.addr)}));
    http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "r", "paths": ["/slow"], "strip_path": false}));
    let proxy = node.proxy;
    let before = echo.seen.load(std::sync::atomic::Ordering::SeqCst);
    let in_flight = std::thread::spawn(move || http_request(proxy, "GET", "/slow/1500", &[]).unwrap());
    // Once the upstream has the request, the proxy has routed it on the old configuration.
    poll("the request to reach the upstream", DEADLINE, || {
        (echo.seen.load(std::sync::atomic::Ordering::SeqCst) > before).then_some(())
    });
    assert_eq!(http_json(node.admin, "PATCH", "/routes/r", &json!({"paths": ["/other"]})).status, 200);
    assert_eq!(get(node.proxy, "/slow/1").status, 404, "new requests see the change");
    let reply = in_flight.join().unwrap();
    assert_eq!(
        (reply.status, reply.json()["path"].clone()),
        (200, json!("/slow/1500")),
        "the request in flight finished"
    );
}
