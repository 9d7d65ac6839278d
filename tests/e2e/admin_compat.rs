//! The Admin API driven as a Kong client drives it, for the places where Kong's behaviour is the
//! contract: plugins the node cannot run, certificates with their SNIs, paging of nested lists,
//! foreign keys by name, nested deletes.

use std::net::SocketAddr;
use std::path::Path;

use gateway_tests::{EchoServer, Exchange, Gateway, free_port, http_form, http_json, http_request, run, stderr};
use serde_json::json;

/// A traditional node on the embedded store (the shipped conf/kong.conf, ports moved to free ones).
struct Node {
    _gateway: Gateway,
    proxy: SocketAddr,
    admin: SocketAddr,
    status: SocketAddr,
}

fn start(dir: &Path) -> Node {
    start_with_tls(dir, None)
}

/// [`start`], with a TLS proxy listener on `tls` too.
fn start_with_tls(dir: &Path, tls: Option<u16>) -> Node {
    let (proxy, admin, status) = (free_port(), free_port(), free_port());
    let conf = gateway_tests::repo_root().join("conf/kong.conf");
    let listen = |p: u16| format!("127.0.0.1:{p}");
    let (mut p, a, s) = (listen(proxy), listen(admin), listen(status));
    if let Some(port) = tls {
        p.push_str(&format!(", 127.0.0.1:{port} ssl"));
    }
    let env =
        [("KONG_PROXY_LISTEN", p.as_str()), ("KONG_ADMIN_LISTEN", a.as_str()), ("KONG_STATUS_LISTEN", s.as_str())];
    let mut gateway = Gateway::start(dir, &["-c", conf.to_str().unwrap()], &env);
    gateway.wait_for_log("gateway started");
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    Node { _gateway: gateway, proxy: at(proxy), admin: at(admin), status: at(status) }
}

fn get(addr: SocketAddr, path: &str) -> Exchange {
    http_request(addr, "GET", path, &[]).unwrap()
}

fn delete(addr: SocketAddr, path: &str) -> Exchange {
    http_request(addr, "DELETE", path, &[]).unwrap()
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const NOT_ENABLED: &str = "plugin 'oauth2' not enabled; add it to the 'plugins' configuration property";

#[test]
fn a_plugin_no_node_can_run_is_refused_on_every_write_path() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let svc = http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": format!("http://{}", echo.addr)}));
    assert_eq!(svc.status, 201, "{svc:?}");
    assert_eq!(http_json(node.admin, "POST", "/services/s/routes", &json!({"paths": ["/p"]})).status, 201);
    let hash = get(node.status, "/status").json()["configuration_hash"].clone();

    // Kong's answer, in JSON and in a form, globally and nested.
    let expected = json!({
        "code": 2,
        "name": "schema violation",
        "message": format!("schema violation (name: {NOT_ENABLED})"),
        "fields": {"name": NOT_ENABLED},
    });
    let refused = http_json(node.admin, "POST", "/plugins", &json!({"name": "oauth2"}));
    assert_eq!((refused.status, refused.json()), (400, expected.clone()));
    let refused = http_form(node.admin, "POST", "/services/s/plugins", "name=oauth2&config.scopes[]=email");
    assert_eq!((refused.status, refused.json()), (400, expected.clone()));
    let refused =
        http_json(node.admin, "PUT", "/plugins/9b0c3c1e-6a8e-4f43-9d3e-3f1f4c2b7a10", &json!({"name": "oauth2"}));
    assert_eq!((refused.status, refused.json()), (400, expected));
    assert_eq!(get(node.admin, "/plugins").json()["data"], json!([]));

    // POST /config: the whole document is refused, the field named where it sits.
    let doc = "_format_version: '3.0'\nservices:\n- name: s\n  host: a.test\n  plugins:\n  - name: oauth2\n";
    let refused = http_json(node.admin, "POST", "/config", &json!({"config": doc}));
    assert_eq!(refused.status, 400, "{refused:?}");
    let body = refused.json();
    assert_eq!(body["name"], "invalid declarative configuration");
    assert_eq!(body["fields"], json!({"services": [{"plugins": [{"name": NOT_ENABLED}]}]}));
    assert_eq!(get(node.status, "/status").json()["configuration_hash"], hash, "the running config stays");
    assert_eq!(get(node.proxy, "/p").status, 200);
}

#[test]
fn a_declarative_file_with_a_plugin_no_node_can_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, "_format_version: '3.0'\nplugins:\n- name: oauth2\n").unwrap();

    // `gateway config parse` names the file, the entity path and the reason.
    let out = run(dir.path(), &["config", "parse", "kong.yml"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("kong.yml") && err.contains(&format!("plugins[0].name: {NOT_ENABLED}")), "{err}");

    // A DB-less node refuses to start on it.
    let yaml = std::fs::read_to_string(&file).unwrap();
    let dir = gateway_tests::DbLess::dir(free_port(), &yaml, &[]);
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    assert!(!gateway.wait_exit(gateway_tests::DEADLINE).success());
    assert!(gateway.log().contains(&format!("plugins[0].name: {NOT_ENABLED}")), "{}", gateway.log());

    // Naming it in `plugins` does not make it runnable: with no code for it the start is refused,
    // at the setting.
    let dir = gateway_tests::DbLess::dir(free_port(), &yaml, &["plugins = bundled, oauth2".into()]);
    let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    assert!(!gateway.wait_exit(gateway_tests::DEADLINE).success());
    assert!(gateway.log().contains("unknown plugin oauth2"), "{}", gateway.log());
}

/// A self-signed X.509 v1 certificate (no extensions) for `name`, made by `openssl x509 -req`.
fn v1_certificate(dir: &Path, name: &str) -> (String, String) {
    let ok = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let subject = format!("/CN={name}");
    ok(&["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "v1.key", "-subj", &subject, "-out", "v1.csr"]);
    ok(&["x509", "-req", "-in", "v1.csr", "-signkey", "v1.key", "-days", "2", "-out", "v1.crt"]);
    let text = String::from_utf8(ok(&["x509", "-in", "v1.crt", "-noout", "-text"]).stdout).unwrap();
    assert!(text.contains("Version: 1 (0x0)"), "{text}");
    (std::fs::read_to_string(dir.join("v1.crt")).unwrap(), std::fs::read_to_string(dir.join("v1.key")).unwrap())
}

#[test]
fn certificates_are_created_with_their_snis_and_shown_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let a = gateway_tests::pki::TestCa::new("a").server(&["a.test"]);
    let b = gateway_tests::pki::TestCa::new("b").server(&["b.test"]);

    // docs/admin-api.md's example: the SNIs come into being with the certificate.
    let created = http_json(
        node.admin,
        "POST",
        "/certificates",
        &json!({"cert": a.cert, "key": a.key, "snis": ["www.a.test", "a.test"]}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let cert = created.json();
    assert_eq!(cert["snis"], json!(["a.test", "www.a.test"]));
    let id = cert["id"].as_str().unwrap().to_string();
    assert_eq!(get(node.admin, &format!("/certificates/{id}")).json()["snis"], json!(["a.test", "www.a.test"]));
    assert_eq!(get(node.admin, "/certificates").json()["data"][0]["snis"], json!(["a.test", "www.a.test"]));
    assert_eq!(get(node.admin, "/certificates/www.a.test").json()["id"], id.as_str());
    let snis = get(node.admin, "/snis").json()["data"].clone();
    assert_eq!(snis.as_array().unwrap().len(), 2);
    assert!(snis.as_array().unwrap().iter().all(|s| s["certificate"]["id"] == id.as_str()), "{snis}");
    assert_eq!(get(node.admin, &format!("/certificates/{id}/snis")).json()["data"].as_array().unwrap().len(), 2);

    // GET /config holds the SNI entities, and importing it elsewhere gives the same hash.
    let exported = get(node.admin, "/config").json();
    let yaml = exported["config"].as_str().unwrap();
    assert!(yaml.contains("www.a.test"), "{yaml}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = start(other_dir.path());
    let imported = http_json(other.admin, "POST", "/config", &json!({"config": yaml}));
    assert_eq!(
        (imported.status, imported.json()["configuration_hash"].clone()),
        (201, exported["configuration_hash"].clone())
    );
    assert_eq!(get(other.admin, &format!("/certificates/{id}")).json()["snis"], json!(["a.test", "www.a.test"]));

    // A name another certificate holds is refused (Kong's message); a form body works too.
    let taken =
        http_json(node.admin, "POST", "/certificates", &json!({"cert": b.cert, "key": b.key, "snis": ["a.test"]}));
    assert_eq!(taken.status, 400, "{taken:?}");
    assert_eq!(taken.json()["fields"]["snis"], format!("a.test already associated with existing certificate '{id}'"));
    let form = format!("cert={}&key={}&snis[]=b.test", urlencode(&b.cert), urlencode(&b.key));
    let created = http_form(node.admin, "POST", "/certificates", &form);
    assert_eq!((created.status, created.json()["snis"].clone()), (201, json!(["b.test"])), "{created:?}");

    // PATCH replaces the list.
    let patched = http_json(node.admin, "PATCH", &format!("/certificates/{id}"), &json!({"snis": ["c.test"]}));
    assert_eq!((patched.status, patched.json()["snis"].clone()), (200, json!(["c.test"])));
    assert_eq!(get(node.admin, "/certificates/www.a.test").status, 404);
}

#[test]
fn an_x509_v1_certificate_is_accepted_and_served() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = v1_certificate(dir.path(), "v1.test");
    let tls = free_port();
    let node = start_with_tls(dir.path(), Some(tls));
    let created =
        http_json(node.admin, "POST", "/certificates", &json!({"cert": cert, "key": key, "snis": ["v1.test"]}));
    assert_eq!(created.status, 201, "{created:?}");
    let svc = http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": format!("http://{}", echo.addr)}));
    assert_eq!(svc.status, 201);
    assert_eq!(http_json(node.admin, "POST", "/services/s/routes", &json!({"paths": ["/"]})).status, 201);

    // The proxy presents it for its SNI.
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{tls}"), "-servername", "v1.test"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("subject=CN = v1.test"), "{text}");

    // A key of another pair, or a part that is not PEM, is refused naming the part at fault.
    let other = gateway_tests::pki::TestCa::new("o").server(&["o.test"]);
    let mismatch = http_json(node.admin, "POST", "/certificates", &json!({"cert": cert, "key": other.key}));
    assert_eq!(
        (mismatch.status, mismatch.json()["fields"].clone()),
        (400, json!({"@entity": ["certificate does not match key"]}))
    );
    let bad_cert = http_json(node.admin, "POST", "/certificates", &json!({"cert": "junk", "key": key}));
    assert_eq!(bad_cert.json()["fields"], json!({"cert": "invalid certificate: no PEM certificate found"}));
    let bad_key = http_json(node.admin, "POST", "/certificates", &json!({"cert": cert, "key": "junk"}));
    assert_eq!(bad_key.json()["fields"], json!({"key": "invalid key: no PEM private key found"}));
}

#[test]
fn next_on_a_nested_list_stays_in_that_list_with_its_filters() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    for service in ["s1", "s2"] {
        let svc = http_json(node.admin, "POST", "/services", &json!({"name": service, "host": "a.test"}));
        assert_eq!(svc.status, 201);
        for i in 0..3 {
            let tags = if i == 1 { json!(["other"]) } else { json!(["t"]) };
            let body = json!({"name": format!("{service}-r{i}"), "paths": [format!("/{service}/{i}")], "tags": tags});
            assert_eq!(http_json(node.admin, "POST", &format!("/services/{service}/routes"), &body).status, 201);
        }
    }
    let s1 = get(node.admin, "/services/s1").json()["id"].as_str().unwrap().to_string();

    // Following `next` from /services/s1/routes?size=1&tags=t walks exactly s1's routes tagged t.
    let mut names = Vec::new();
    let mut url = "/services/s1/routes?size=1&tags=t".to_string();
    loop {
        let page = get(node.admin, &url).json();
        for route in page["data"].as_array().unwrap() {
            names.push(route["name"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&format!("/services/{s1}/routes?")), "{next}");
                url = next.to_string();
            }
            None => break,
        }
        assert!(names.len() <= 6, "next loops: {names:?}");
    }
    names.sort();
    assert_eq!(names, vec!["s1-r0", "s1-r2"]);

    // The top-level list keeps its filters too.
    let page = get(node.admin, "/routes?size=1&tags=other").json();
    let next = page["next"].as_str().unwrap();
    assert!(next.starts_with("/routes?") && next.contains("size=1") && next.contains("tags=other"), "{next}");
    let rest = get(node.admin, next).json();
    assert_eq!((rest["data"].as_array().unwrap().len(), rest["next"].clone()), (1, serde_json::Value::Null));
    assert_eq!(rest["data"][0]["tags"], json!(["other"]));
}

#[test]
fn a_nested_delete_of_a_child_that_is_not_the_parents_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    for service in ["s1", "s2"] {
        assert_eq!(http_json(node.admin, "POST", "/services", &json!({"name": service, "host": "a.test"})).status, 201);
        let body = json!({"name": format!("{service}-r"), "paths": [format!("/{service}")]});
        assert_eq!(http_json(node.admin, "POST", &format!("/services/{service}/routes"), &body).status, 201);
    }
    let r2 = get(node.admin, "/routes/s2-r").json()["id"].as_str().unwrap().to_string();

    // Another service's route, by name or id, and a route that does not exist: 404, nothing deleted.
    assert_eq!(delete(node.admin, "/services/s1/routes/s2-r").status, 404);
    assert_eq!(delete(node.admin, &format!("/services/s1/routes/{r2}")).status, 404);
    assert_eq!(delete(node.admin, "/services/s1/routes/nope").status, 404);
    assert_eq!(delete(node.admin, "/services/nope/routes/s2-r").status, 404);
    assert_eq!(get(node.admin, "/routes/s2-r").status, 200);

    // Its own child goes; the top-level DELETE of something absent stays 204, as in Kong.
    assert_eq!(delete(node.admin, "/services/s2/routes/s2-r").status, 204);
    assert_eq!(get(node.admin, "/routes/s2-r").status, 404);
    assert_eq!(delete(node.admin, "/routes/s2-r").status, 204);
}

#[test]
fn foreign_keys_are_accepted_by_any_unique_field_in_json_forms_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let svc = http_json(node.admin, "POST", "/services", &json!({"name": "s1", "host": "a.test"}));
    let s1 = svc.json()["id"].clone();

    // A service by name: JSON and form.
    let by_json =
        http_json(node.admin, "POST", "/routes", &json!({"name": "r1", "paths": ["/a"], "service": {"name": "s1"}}));
    assert_eq!((by_json.status, by_json.json()["service"].clone()), (201, json!({"id": s1})), "{by_json:?}");
    let by_form = http_form(node.admin, "POST", "/routes", "name=r2&paths[]=/b&service.name=s1");
    assert_eq!((by_form.status, by_form.json()["service"].clone()), (201, json!({"id": s1})), "{by_form:?}");
    let patched = http_form(node.admin, "PATCH", "/routes/r2", "service.id=");
    assert_eq!(patched.status, 400, "an empty id is not a reference: {patched:?}");
    // A PATCH replaces the reference whole: `{"name": …}` does not merge into the old `{"id": …}`.
    let s2 = http_json(node.admin, "POST", "/services", &json!({"name": "s2", "host": "b.test"})).json()["id"].clone();
    let moved = http_json(node.admin, "PATCH", "/routes/r2", &json!({"service": {"name": "s2"}}));
    assert_eq!((moved.status, moved.json()["service"].clone()), (200, json!({"id": s2})), "{moved:?}");

    // A certificate by id, in JSON and in a form.
    let pem = gateway_tests::pki::TestCa::new("c").server(&["c.test"]);
    let cert = http_json(node.admin, "POST", "/certificates", &json!({"cert": pem.cert, "key": pem.key})).json();
    let cert_id = cert["id"].as_str().unwrap();
    let sni = http_json(node.admin, "POST", "/snis", &json!({"name": "c.test", "certificate": {"id": cert_id}}));
    assert_eq!((sni.status, sni.json()["certificate"]["id"].clone()), (201, json!(cert_id)), "{sni:?}");
    let sni = http_form(node.admin, "POST", "/snis", &format!("name=d.test&certificate.id={cert_id}"));
    assert_eq!(sni.status, 201, "{sni:?}");
    assert_eq!(get(node.admin, &format!("/certificates/{cert_id}")).json()["snis"], json!(["c.test", "d.test"]));

    // Kong's answers when the reference names nothing: by a unique field, unresolved (code 13);
    // by id, a foreign key violation (code 4).
    let unresolved = http_json(node.admin, "POST", "/routes", &json!({"paths": ["/x"], "service": {"name": "nope"}}));
    let reason = "the foreign key cannot be resolved with '{name=\"nope\"}' for an existing 'services' entity";
    assert_eq!(
        (unresolved.status, unresolved.json()),
        (
            400,
            json!({
                "code": 13,
                "name": "foreign keys unresolved",
                "message": format!("foreign key unresolved (service.name: {reason})"),
                "fields": {"service": {"name": reason}},
            })
        )
    );
    let missing = "6b4b3c2e-0000-4000-8000-000000000001";
    let dangling = http_json(node.admin, "POST", "/routes", &json!({"paths": ["/x"], "service": {"id": missing}}));
    let body = dangling.json();
    assert_eq!(
        (dangling.status, body["code"].clone(), body["name"].clone()),
        (400, json!(4), json!("foreign key violation"))
    );
    assert_eq!(body["fields"], json!({"service": {"id": missing}}));
    let wrong_field =
        http_json(node.admin, "POST", "/routes", &json!({"paths": ["/x"], "service": {"username": "s1"}}));
    assert_eq!(
        (wrong_field.status, wrong_field.json()["fields"]["service"]["username"].clone()),
        (400, json!("unknown field"))
    );

    // A declarative document names its service by name, as a string.
    let doc = "_format_version: '3.0'\nservices:\n- {name: s9, host: b.test}\nroutes:\n- {name: r9, paths: [/r9], service: s9}\n";
    let imported = http_json(node.admin, "POST", "/config", &json!({"config": doc}));
    assert_eq!(imported.status, 201, "{imported:?}");
    let s9 = get(node.admin, "/services/s9").json()["id"].clone();
    assert_eq!(get(node.admin, "/routes/r9").json()["service"], json!({"id": s9}));
}

#[test]
fn error_kinds_map_to_kongs_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    assert_eq!(http_json(node.admin, "POST", "/services", &json!({"name": "s1", "host": "a.test"})).status, 201);
    assert_eq!(http_json(node.admin, "POST", "/services", &json!({"name": "s2", "host": "a.test"})).status, 201);

    // A unique clash is 409, whichever entity the validator reports it at.
    let clash = http_json(node.admin, "POST", "/services", &json!({"name": "s1", "host": "b.test"}));
    assert_eq!((clash.status, clash.json()["fields"].clone()), (409, json!({"name": "s1"})));
    let renamed = http_json(node.admin, "PATCH", "/services/s2", &json!({"name": "s1"}));
    assert_eq!((renamed.status, renamed.json()["name"].clone()), (409, json!("unique constraint violation")));

    // A bad field beside a clash: the schema violation wins, as in Kong (validation comes first).
    let both = http_json(node.admin, "POST", "/services", &json!({"name": "s1", "host": "b.test", "port": 0}));
    assert_eq!(
        (both.status, both.json()["fields"].clone()),
        (400, json!({"port": "value should be between 1 and 65535"}))
    );

    // A nested child that is not there: 404.
    assert_eq!(get(node.admin, "/services/s1/routes/nope").status, 404);
}

/// Kong's own fixture of a large real-world configuration (`_format_version: "1.1"`, 236
/// services, 286 routes, upstreams with health checks, ip-restriction on 94 routes and a global
/// prometheus): a DB-less node serves it from its file, and `POST /config` takes it, as Kong's
/// "can load large declarative config" test does.
#[test]
fn kongs_large_format_1_1_fixture_loads_from_a_file_and_through_post_config() {
    let fixture = std::fs::read_to_string(gateway_tests::repo_root().join("tests/data/kong-burst.yml")).unwrap();
    let status_port = free_port();
    let admin_port = free_port();
    let node = gateway_tests::DbLess::start(
        &fixture,
        &[format!("status_listen = 127.0.0.1:{status_port}"), format!("admin_listen = 127.0.0.1:{admin_port}")],
    );
    let status = get(SocketAddr::from(([127, 0, 0, 1], status_port)), "/status").json();
    let counts = &status["entities"];
    for (kind, n) in [("services", 236), ("routes", 286), ("upstreams", 236), ("targets", 237), ("plugins", 95)] {
        assert_eq!(counts[kind], n, "{kind}: {status}");
    }
    // Kept as Kong 3 keeps it: in the current format.
    let exported = get(SocketAddr::from(([127, 0, 0, 1], admin_port)), "/config").json();
    assert!(
        exported["config"].as_str().unwrap().starts_with("_format_version: '3.0'")
            || exported["config"].as_str().unwrap().contains("_format_version: \"3.0\""),
        "{}",
        &exported["config"].as_str().unwrap()[..200]
    );
    drop(node);

    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let posted = http_json(node.admin, "POST", "/config", &json!({"config": fixture}));
    assert_eq!(posted.status, 201, "{}", posted.body);
    let status = get(node.status, "/status").json();
    assert_eq!(
        (status["entities"]["services"].clone(), status["entities"]["routes"].clone()),
        (json!(236), json!(286))
    );
}
