//! The console (`admin_gui_listen`): its pages in a real browser (headless Chromium) against a
//! control plane with real data planes, and its door: pages by plain links, the Admin API at
//! `/api` on the console's own origin only, never on a data plane. Screenshots of the pages are
//! left under `target/tmp/console/` for review.

use std::net::SocketAddr;
use std::path::PathBuf;

use gateway_tests::browser::Browser;
use gateway_tests::{EchoServer, Exchange, Gateway, conf_dir, free_port, http_send, poll};
use serde_json::json;

use crate::hybrid::{SYNC_DEADLINE, add_route, cluster_dir, cp_hash, data_planes, start_cp_env, start_dp};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Opens the list page `list` and its "New ..." form.
fn open_new_form(browser: &mut Browser, listen: &str, list: &str) {
    browser.goto(&format!("http://{listen}/{list}"));
    browser.wait_for(
        &format!("the {list} list"),
        "document.body.dataset.ready === 'true' && document.querySelector('#new')",
    );
    browser.click("#new");
}

fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Exchange {
    http_send(addr, method, path, headers, body.map(str::as_bytes)).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[test]
fn the_data_plane_list_shows_running_nodes_in_sync_and_a_stopped_one_goes_stale() {
    let dir = cluster_dir();
    let (cluster, gui) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{gui}");
    let cp = start_cp_env(dir.path(), cluster, &[], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    let echo = EchoServer::start();
    add_route(&cp, &echo, "echo", "echo-route", "/echo");
    let dp1 = start_dp(dir.path(), "dp1", cluster, &["cluster_dp_labels = site:berlin".into()]);
    let dp2 = start_dp(dir.path(), "dp2", cluster, &[]);
    let hash = cp_hash(&cp);
    let planes = poll("both data planes in sync", SYNC_DEADLINE, || {
        let planes = data_planes(&cp);
        (planes.len() == 2 && planes.iter().all(|p| p["config_hash"] == hash)).then_some(planes)
    });
    let stopped_id = planes
        .iter()
        .find(|p| p["labels"].as_object().is_none_or(|l| l.is_empty()))
        .and_then(|p| p["id"].as_str())
        .expect("dp2 has no labels")
        .to_string();

    let mut browser = Browser::start(1280, 800);
    browser.goto(&format!("http://{listen}/data-planes"));
    browser.wait_for(
        "two data planes, connected and in sync",
        "document.body.dataset.ready === 'true' \
         && document.querySelectorAll('tbody tr').length === 2 \
         && [...document.querySelectorAll('td[data-column=sync_status]')].every(td => td.textContent === 'normal') \
         && [...document.querySelectorAll('td[data-column=status]')].every(td => td.textContent === 'connected')",
    );
    let shown = browser.eval(
        "[...document.querySelectorAll('tbody tr')].map(tr => ({ id: tr.dataset.id, \
           hash: tr.querySelector('td[data-column=config_hash] abbr').title, \
           marked: tr.querySelector('td[data-column=config_hash]').textContent.includes('differs'), \
           labels: tr.querySelector('td[data-column=labels]').textContent, \
           seen: tr.querySelector('td[data-column=last_seen]').textContent }))",
    );
    let shown = shown.as_array().unwrap();
    for plane in &planes {
        let row = shown.iter().find(|r| r["id"] == plane["id"]).unwrap_or_else(|| panic!("{plane} shown: {shown:?}"));
        assert_eq!((&row["hash"], &row["marked"]), (&hash, &json!(false)), "the CP's hash, not marked: {row}");
        assert!(row["seen"].as_str().unwrap().ends_with(" s ago"), "{row}");
    }
    assert!(shown.iter().any(|r| r["labels"] == "site: berlin"), "{shown:?}");
    assert_eq!(browser.eval("document.querySelectorAll('.differs').length"), json!(0));
    assert_eq!(browser.eval("document.querySelector('nav a[aria-current=page]').textContent"), "Data plane nodes");
    browser.screenshot(&shots().join("data-planes.png"));

    // One node stops: its row goes stale without a reload; the other stays in sync.
    drop(dp2);
    browser.wait_for(
        "the stopped data plane shown as stale",
        &format!(
            "document.querySelector('tr[data-id=\"{stopped_id}\"] td[data-column=status]')?.textContent === 'stale'"
        ),
    );
    assert_eq!(
        browser.eval("[...document.querySelectorAll('td[data-column=status]')].filter(td => td.textContent === 'connected').length"),
        json!(1)
    );
    browser.screenshot(&shots().join("data-planes-one-stale.png"));

    // The overview: the CP's hash, and the stopped node among the warnings.
    browser.eval("document.querySelector('nav a[href=\"/\"]').click()");
    let warnings = browser.wait_for(
        "the overview's warnings",
        "document.querySelector('#config-hash') && document.querySelector('#warnings')?.textContent",
    );
    assert!(warnings.as_str().unwrap().contains(&format!("{stopped_id}) is not connected")), "{warnings}");
    assert_eq!(browser.eval("document.querySelector('#config-hash .value').textContent"), hash);
    assert_eq!(browser.eval("location.pathname"), "/");
    browser.screenshot(&shots().join("overview.png"));

    // The entity pages, reached by links: the list, then the service's own page.
    browser.goto(&format!("http://{listen}/services"));
    browser.wait_for("the service list", "document.querySelector('tr[data-id] a')?.textContent === 'echo'");
    browser.screenshot(&shots().join("services.png"));
    // A search filters the page; a name not on it can be opened directly.
    browser.type_into("#search", "elsewhere");
    browser.wait_for(
        "the filtered list",
        "document.querySelector('#lookup a')?.getAttribute('href') === '/services/elsewhere'",
    );
    assert_eq!(browser.eval("document.querySelectorAll('tr[data-id]').length"), json!(0));
    browser.type_into("#search", "ech");
    browser.wait_for("the match", "document.querySelectorAll('tr[data-id]').length === 1");
    browser.eval("document.querySelector('tr[data-id] a').click()");
    browser.wait_for(
        "the service's page",
        "location.pathname === '/services/echo' && document.querySelector('dl.fields')",
    );
    assert_eq!(browser.eval("document.querySelector('h1').textContent"), "Service echo");
    browser.screenshot(&shots().join("service.png"));
    browser.goto(&format!("http://{listen}/routes"));
    browser.wait_for("the route list", "document.querySelector('tr[data-id] a')?.textContent === 'echo-route'");
    browser.screenshot(&shots().join("routes.png"));

    // In shared mode the certificates page says why there is no list of trusted certificates.
    browser.goto(&format!("http://{listen}/certificates"));
    let notice =
        browser.wait_for("the shared-mode notice", "document.querySelector('#dp-certificates .notice')?.textContent");
    assert!(notice.as_str().unwrap().contains("cluster_mtls = shared"), "{notice}");

    // In shared mode the wizard makes only the dp.conf: the node presents the one shared pair.
    browser.goto(&format!("http://{listen}/data-planes/new"));
    browser.wait_for("the wizard", "document.body.dataset.ready === 'true' && document.querySelector('#dp-generate')");
    assert_eq!(browser.eval("document.querySelector('#dp-name')"), json!(null), "no pair to name");
    browser.type_into("#dp-control-plane", &format!("127.0.0.1:{cluster}"));
    browser.click("#dp-use-proxy");
    browser.type_into("#dp-proxy-server", "http://proxy.internal:3128");
    browser.click("#dp-generate");
    let conf = browser.wait_for("the dp.conf", "document.querySelector('#dp-conf')?.textContent");
    let conf = conf.as_str().unwrap();
    for line in [
        "cluster_mtls = shared",
        "cluster_cert = cluster.crt",
        "cluster_use_proxy = on",
        "proxy_server = http://proxy.internal:3128",
        "proxy_server_ssl_verify = on",
    ] {
        assert!(conf.lines().any(|l| l == line), "`{line}` in:\n{conf}");
    }
    assert_eq!(browser.eval("document.querySelector('#dp-key')"), json!(null));
    browser.screenshot(&shots().join("data-plane-wizard-shared.png"));

    // Narrow and dark: the same page still works.
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 420, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
    );
    browser
        .call("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}));
    browser.goto(&format!("http://{listen}/data-planes"));
    browser.wait_for("the list in a narrow window", "document.querySelectorAll('tbody tr').length === 2");
    let background = browser.eval("getComputedStyle(document.body).backgroundColor");
    assert_eq!(background, "rgb(13, 17, 23)", "the dark theme");
    browser.screenshot(&shots().join("data-planes-narrow-dark.png"));
    // The toggle overrides the system's preference, and the page remembers it.
    assert_eq!(browser.eval("document.querySelector('#theme').getAttribute('aria-pressed')"), "true");
    browser.eval("document.querySelector('#theme').click()");
    assert_eq!(browser.eval("getComputedStyle(document.body).backgroundColor"), "rgb(246, 248, 250)");
    assert_eq!(browser.eval("document.querySelector('#theme').getAttribute('aria-pressed')"), "false");
    browser.goto(&format!("http://{listen}/"));
    browser.wait_for("the overview", "document.body.dataset.ready === 'true'");
    assert_eq!(browser.eval("getComputedStyle(document.body).backgroundColor"), "rgb(246, 248, 250)");
    drop(dp1);
}

#[test]
fn a_service_and_a_route_made_through_the_forms_are_served_by_a_data_plane() {
    let dir = cluster_dir();
    let (cluster, gui) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{gui}");
    let cp = start_cp_env(dir.path(), cluster, &[], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    let dp = start_dp(dir.path(), "dp", cluster, &[]);
    let echo = EchoServer::start();
    let mut browser = Browser::start(1280, 900);

    // A service with a port out of range: the error shows next to the port, and nothing is written.
    open_new_form(&mut browser, &listen, "services");
    browser.type_into("#field-name", "made-in-console");
    browser.type_into("#field-host", &echo.addr.ip().to_string());
    browser.type_into("#field-port", "70000");
    browser.click("form.entity-form button[type=submit]");
    let error =
        browser.wait_for("the port's error", "document.querySelector('#field-port-error:not([hidden])')?.textContent");
    assert!(error.as_str().unwrap().contains("65535"), "{error}");
    assert_eq!(browser.eval("document.querySelector('#field-port').getAttribute('aria-invalid')"), "true");
    assert_eq!(browser.eval("document.activeElement.id"), "field-port", "the first field at fault has the focus");
    assert_eq!(browser.eval("document.querySelector('#field-host-error').hidden"), json!(true));
    browser.screenshot(&shots().join("service-form-error.png"));
    assert_eq!(send(cp.admin, "GET", "/services", &[], None).json()["data"], json!([]), "nothing written");

    // Corrected, it is made, and the page goes to the new service.
    browser.type_into("#field-port", &echo.addr.port().to_string());
    browser.click("form.entity-form button[type=submit]");
    browser.wait_for(
        "the new service's page",
        "location.pathname === '/services/made-in-console' && document.querySelector('dl.fields')",
    );

    // A route for it, through the routes' form.
    open_new_form(&mut browser, &listen, "routes");
    browser.type_into("#field-name", "made-route");
    browser.type_into("#field-service", "made-in-console");
    browser.type_into("#field-paths", "/made");
    browser.click("form.entity-form button[type=submit]");
    browser.wait_for("the new route's page", "location.pathname === '/routes/made-route'");
    browser.screenshot(&shots().join("route.png"));

    // The data plane serves it.
    let proxied = poll("the data plane to serve /made", SYNC_DEADLINE, || {
        let answer = http_send(dp.proxy, "GET", "/made/x", &[], None).ok()?;
        (answer.status == 200).then_some(answer)
    });
    assert_eq!(proxied.json()["path"], "/x", "strip_path is on by default, as in Kong");

    // Edited through the item page's form: the change reaches the data plane too.
    browser.goto(&format!("http://{listen}/routes/made-route"));
    browser.wait_for("the route's page", "document.body.dataset.ready === 'true' && document.querySelector('#edit')");
    browser.click("#edit");
    browser.type_into("#field-paths", "/changed");
    browser.click("#edit-entity button[type=submit]");
    browser.wait_for("the saved route", "document.querySelector('dl.fields')?.textContent.includes('/changed')");
    poll("the data plane to serve /changed", SYNC_DEADLINE, || {
        (http_send(dp.proxy, "GET", "/changed/x", &[], None).ok()?.status == 200).then_some(())
    });

    // A plugin through its schema's form: a bad config value is refused next to its field...
    open_new_form(&mut browser, &listen, "plugins");
    browser.wait_for("the plugin form", "document.querySelector('#plugin-name')");
    browser.eval("const s = document.querySelector('#plugin-name'); s.value = 'rate-limiting'; s.dispatchEvent(new Event('change'))");
    browser.wait_for("rate-limiting's fields", "document.querySelector('#plugin-config-second')");
    browser.type_into("#plugin-route", "made-route");
    browser.type_into("#plugin-config-second", "-1");
    browser.click("#new-entity button[type=submit]");
    let error = browser.wait_for(
        "the field's error",
        "document.querySelector('#plugin-config-second-error:not([hidden])')?.textContent",
    );
    assert!(!error.as_str().unwrap().is_empty());
    browser.screenshot(&shots().join("plugin-form-error.png"));
    assert_eq!(send(cp.admin, "GET", "/plugins", &[], None).json()["data"], json!([]), "nothing written");
    // ...and key-auth on the route, then a consumer with a key made on its page: the data plane
    // refuses the request without the key and lets it through with it.
    open_new_form(&mut browser, &listen, "plugins");
    browser.wait_for("the plugin form", "document.querySelector('#plugin-name')");
    browser.eval(
        "const s = document.querySelector('#plugin-name'); s.value = 'key-auth'; s.dispatchEvent(new Event('change'))",
    );
    browser.wait_for("key-auth's fields", "document.querySelector('#plugin-config-key_names')");
    browser.type_into("#plugin-route", "made-route");
    browser.click("#new-entity button[type=submit]");
    browser.wait_for(
        "the plugin's page",
        "location.pathname.startsWith('/plugins/') && document.querySelector('dl.fields')",
    );
    poll("the data plane to ask for a key", SYNC_DEADLINE, || {
        (http_send(dp.proxy, "GET", "/changed/x", &[], None).ok()?.status == 401).then_some(())
    });
    open_new_form(&mut browser, &listen, "consumers");
    browser.type_into("#field-username", "alice");
    browser.click("#new-entity button[type=submit]");
    browser.wait_for(
        "alice's page",
        "location.pathname === '/consumers/alice' && document.querySelector('#key-auth-key')",
    );
    browser.type_into("#key-auth-key", "alice-secret-key");
    browser.click("#key-auth button[type=submit]");
    browser.wait_for(
        "the key listed",
        "document.querySelector('#key-auth td[data-column=key]')?.textContent === 'alice-secret-key'",
    );
    browser.type_into("#acls-group", "admins");
    browser.click("#acls button[type=submit]");
    browser.wait_for(
        "the group listed",
        "document.querySelector('#acls td[data-column=group]')?.textContent === 'admins'",
    );
    browser.screenshot(&shots().join("consumer.png"));
    let through = poll("the key to let the request through", SYNC_DEADLINE, || {
        let answer = http_send(dp.proxy, "GET", "/changed/x", &[("apikey", "alice-secret-key")], None).ok()?;
        (answer.status == 200).then_some(answer)
    });
    assert_eq!(through.json()["headers"]["x-consumer-username"], "alice");

    // The plugin edited on its page: only the edited field changes.
    let plugins = send(cp.admin, "GET", "/plugins", &[], None).json();
    let before = plugins["data"][0].clone();
    browser.goto(&format!("http://{listen}/plugins/{}", before["id"].as_str().unwrap()));
    browser.wait_for("the plugin's page", "document.body.dataset.ready === 'true' && document.querySelector('#edit')");
    browser.click("#edit");
    browser.wait_for("the plugin's form", "document.querySelector('#plugin-config-key_names')");
    browser.type_into("#plugin-config-key_names", "x-api-key");
    browser.click("#edit-entity button[type=submit]");
    browser.wait_for("the saved plugin", "document.querySelector('dl.fields')?.textContent.includes('x-api-key')");
    let after = send(cp.admin, "GET", &format!("/plugins/{}", before["id"].as_str().unwrap()), &[], None).json();
    let mut expected = before.clone();
    expected["config"]["key_names"] = json!(["x-api-key"]);
    expected["updated_at"] = after["updated_at"].clone();
    assert_eq!(after, expected, "nothing but key_names changed");
    poll("the new key name enforced", SYNC_DEADLINE, || {
        let answer = http_send(dp.proxy, "GET", "/changed/x", &[("x-api-key", "alice-secret-key")], None).ok()?;
        (answer.status == 200).then_some(())
    });

    // An upstream and a target, through the upstream's form and page.
    open_new_form(&mut browser, &listen, "upstreams");
    browser.type_into("#field-name", "pool.internal");
    browser.click("#new-entity button[type=submit]");
    browser.wait_for(
        "the upstream's page",
        "location.pathname === '/upstreams/pool.internal' && document.querySelector('#targets-target')",
    );
    browser.type_into("#targets-target", &echo.addr.to_string());
    browser.type_into("#targets-weight", "50");
    browser.click("#targets button[type=submit]");
    browser.wait_for(
        "the target listed",
        "document.querySelector('#targets td[data-column=weight]')?.textContent === '50'",
    );
    browser.screenshot(&shots().join("upstream.png"));
    for list in ["consumers", "plugins", "upstreams"] {
        browser.goto(&format!("http://{listen}/{list}"));
        browser.wait_for("the list", "document.body.dataset.ready === 'true' && document.querySelector('tr[data-id]')");
        browser.screenshot(&shots().join(format!("{list}.png")));
    }
    let targets = send(cp.admin, "GET", "/upstreams/pool.internal/targets", &[], None).json();
    assert_eq!(targets["data"][0]["target"], echo.addr.to_string(), "{targets}");
}

#[test]
fn the_new_data_plane_wizards_files_start_a_node_that_syncs() {
    let dir = crate::pki_tools::pki_dir();
    let d = dir.path();
    let (cluster, telemetry, gui, admin) = (free_port(), free_port(), free_port(), free_port());
    let listen = format!("127.0.0.1:{gui}");
    crate::hybrid::write_conf(
        d,
        "cp.conf",
        &[
            "role = control_plane".into(),
            "cluster_mtls = pki".into(),
            "cluster_cert = cp.crt".into(),
            "cluster_cert_key = cp.key".into(),
            "cluster_ca_cert = cluster_ca.crt".into(),
            "prefix = cp".into(),
            format!("admin_listen = 127.0.0.1:{admin}"),
            format!("cluster_listen = 127.0.0.1:{cluster}"),
            format!("cluster_telemetry_listen = 127.0.0.1:{telemetry}"),
            "status_listen = off".into(),
        ],
    );
    let mut cp = Gateway::start(d, &["-c", "cp.conf"], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    cp.wait_for_log("gateway started");
    let admin = at(admin);

    let mut browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{listen}/data-planes"));
    browser.wait_for(
        "the data plane list",
        "document.body.dataset.ready === 'true' && document.querySelector('#new-data-plane')",
    );
    browser.click("#new-data-plane");
    browser.wait_for("the wizard", "location.pathname === '/data-planes/new' && document.querySelector('#dp-name')");
    // The defaults name this control plane's ports.
    let defaults = browser.eval("document.querySelector('#dp-control-plane').value");
    assert!(defaults.as_str().unwrap().ends_with(&format!(":{cluster}")), "{defaults}");
    browser.type_into("#dp-name", "dp-wizard");
    browser.type_into("#dp-control-plane", &format!("127.0.0.1:{cluster}"));
    browser.type_into("#dp-telemetry", "not an address");
    browser.type_into("#dp-labels", "site:lab, tier:edge");
    browser.click("#dp-use-proxy");
    browser.click("#dp-generate");
    let refused = browser
        .wait_for("the address refused", "document.querySelector('#dp-telemetry-error:not([hidden])')?.textContent");
    assert_eq!(refused, "must be host:port");
    assert!(
        browser.eval("document.querySelector('#dp-proxy-server-error').hidden") == json!(false),
        "a proxy URL is needed"
    );
    browser.screenshot(&shots().join("data-plane-wizard-errors.png"));
    assert_eq!(send(admin, "GET", "/clustering/dp-certificates", &[], None).json()["data"], json!([]), "nothing made");
    browser.click("#dp-use-proxy");
    browser.type_into("#dp-telemetry", &format!("127.0.0.1:{telemetry}"));
    browser.click("#dp-generate");
    let conf = browser.wait_for("the dp.conf", "document.querySelector('#dp-conf')?.textContent");
    let cert = browser.eval("document.querySelector('#dp-cert').textContent");
    let key = browser.eval("document.querySelector('#dp-key').textContent");
    browser.screenshot(&shots().join("data-plane-wizard.png"));
    assert_eq!(browser.eval("document.querySelectorAll('[aria-invalid=true]').length"), json!(0), "errors cleared");
    assert_eq!(
        browser.eval("document.querySelector('#dp-proxy-server').offsetParent"),
        json!(null),
        "the proxy's fields are hidden while it is off"
    );
    let conf = conf.as_str().unwrap();
    for line in [
        "role = data_plane",
        "cluster_mtls = pki",
        &format!("cluster_control_plane = 127.0.0.1:{cluster}"),
        "cluster_cert = dp-wizard.crt",
        "cluster_cert_key = dp-wizard.key",
        "cluster_ca_cert = cluster_ca.crt",
        "cluster_dp_labels = site:lab,tier:edge",
    ] {
        assert!(conf.lines().any(|l| l == line), "`{line}` in:\n{conf}");
    }
    assert!(!conf.contains("cluster_use_proxy"), "{conf}");
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#dp-output a[download]')].map(a => a.download)"),
        json!(["dp.conf", "dp-wizard.crt", "dp-wizard.key"])
    );
    // The control plane trusts the certificate and keeps no key.
    let trusted = send(admin, "GET", "/clustering/dp-certificates", &[], None).json();
    assert_eq!(trusted["data"][0]["subject"], "CN=dp-wizard", "{trusted}");
    assert!(trusted["data"][0].get("key").is_none());
    assert!(!std::fs::read_to_string(d.join("cp/dp_certificates.json")).unwrap().contains("PRIVATE KEY"));

    // The files as the page gave them start a data plane that syncs (only where it listens and
    // keeps its files differ, as they would on its own machine).
    std::fs::write(d.join("dp.conf"), conf).unwrap();
    std::fs::write(d.join("dp-wizard.crt"), cert.as_str().unwrap()).unwrap();
    std::fs::write(d.join("dp-wizard.key"), key.as_str().unwrap()).unwrap();
    let proxy = free_port();
    let proxy_listen = format!("127.0.0.1:{proxy}");
    let mut dp = Gateway::start(
        d,
        &["-c", "dp.conf"],
        &[("KONG_PREFIX", "dp"), ("KONG_PROXY_LISTEN", &proxy_listen), ("KONG_STATUS_LISTEN", "off")],
    );
    dp.wait_for_log("gateway started");
    browser.goto(&format!("http://{listen}/data-planes"));
    browser.wait_for(
        "the new node listed, connected and in sync",
        "document.querySelector('td[data-column=labels]')?.textContent === 'site: lab tier: edge' \
         && document.querySelector('td[data-column=status]').textContent === 'connected' \
         && document.querySelector('td[data-column=sync_status]').textContent === 'normal'",
    );
    let hash = send(admin, "GET", "/status", &[], None).json()["configuration_hash"].clone();
    poll("the new node in sync", SYNC_DEADLINE, || {
        let planes = send(admin, "GET", "/clustering/data-planes", &[], None).json();
        (planes["data"][0]["config_hash"] == hash).then_some(())
    });

    // The certificates page: the wizard's certificate is trusted (pinned); a CA of the operator's
    // is added; a PEM that is none is refused next to its field; the node's own is removed.
    browser.goto(&format!("http://{listen}/certificates"));
    browser.wait_for(
        "the trusted certificates",
        "document.querySelector('#dp-certificates td[data-column=subject]')?.textContent === 'CN=dp-wizard'",
    );
    assert_eq!(browser.eval("document.querySelector('#dp-certificates td[data-column=kind]').textContent"), "pinned");
    browser.type_into("#dp-cert-pem", "not a certificate");
    browser.click("#dp-cert-add");
    browser.wait_for("the refusal", "document.querySelector('#dp-cert-pem-error:not([hidden])')?.textContent");
    let ca = gateway_tests::pki::TestCa::new("Operator CA");
    browser.type_into("#dp-cert-pem", &ca.cert_pem());
    browser.click("#dp-cert-add");
    browser.wait_for("the CA listed", "document.querySelectorAll('#dp-certificates tbody tr').length === 2");
    assert!(browser.eval("document.querySelector('#dp-certificates').textContent").as_str().unwrap().contains("CA"));
    // A proxy certificate for an SNI, added the same way, and listed with it.
    let proxy_pem = ca.server(&["shop.test"]);
    browser.type_into("#proxy-certificates-list-cert", &proxy_pem.cert);
    browser.type_into("#proxy-certificates-list-key", &proxy_pem.key);
    browser.type_into("#proxy-certificates-list-snis", "shop.test");
    browser.click("#proxy-certificates-list button[type=submit]");
    browser.wait_for(
        "the proxy certificate listed",
        "document.querySelector('#proxy-certificates-list td[data-column=snis]')?.textContent === 'shop.test'",
    );
    assert_eq!(send(admin, "GET", "/snis/shop.test", &[], None).status, 200);
    browser.screenshot(&shots().join("certificates.png"));
    browser.eval("window.confirm = () => true");
    browser.click("#dp-certificates button[aria-label='Remove CN=dp-wizard']");
    browser.wait_for(
        "the node's certificate removed",
        "document.querySelectorAll('#dp-certificates tbody tr').length === 1",
    );
    let left = send(admin, "GET", "/clustering/dp-certificates", &[], None).json();
    assert_eq!(left["data"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left["data"][0]["is_ca"], true, "{left}");
    drop(dp);
    drop(cp);
}

#[test]
fn the_analytics_page_shows_the_totals_of_a_load() {
    let echo = EchoServer::start();
    let (gui, admin, proxy) = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&[
        "database = off".into(),
        "declarative_config = kong.yml".into(),
        "prefix = servroot".into(),
        format!("proxy_listen = 127.0.0.1:{proxy}"),
        format!("admin_listen = 127.0.0.1:{admin}"),
        "status_listen = off".into(),
    ]);
    std::fs::write(
        dir.path().join("kong.yml"),
        format!(
            "_format_version: '3.0'\nservices:\n- name: billing\n  url: http://{}\n  routes: [{{name: invoices, paths: [/invoices]}}]\n",
            echo.addr
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{gui}");
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    node.wait_for_log("gateway started");
    for _ in 0..23 {
        assert_eq!(send(at(proxy), "GET", "/invoices/1", &[], None).status, 200);
    }
    for _ in 0..4 {
        assert_eq!(send(at(proxy), "GET", "/nowhere", &[], None).status, 404);
    }
    poll("the load in the analytics", SYNC_DEADLINE, || {
        let totals = send(at(admin), "GET", "/analytics", &[], None).json();
        (totals["data"][0]["calls"] == 27).then_some(())
    });

    let mut browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{listen}/analytics"));
    browser.wait_for("the totals", "document.querySelector('#total-calls .value')?.textContent === '27'");
    assert_eq!(browser.eval("document.querySelector('#total-2xx .value').textContent"), "23");
    assert_eq!(browser.eval("document.querySelector('#total-4xx .value').textContent"), "4");
    assert_eq!(
        browser.eval("document.querySelector('tr[data-group=billing] td[data-column=calls]').textContent"),
        "23"
    );
    assert_eq!(
        browser.eval("document.querySelector('tr[data-group=\"(no service)\"] td[data-column=\"4xx\"]').textContent"),
        "4"
    );
    // The charts are drawn: the bars over time add up to the total, each with its number.
    let drawn = browser.eval(
        "[...document.querySelectorAll('#chart-over-time rect title')].map(t => Number(t.textContent.split(': ').pop())).reduce((a, b) => a + b, 0)",
    );
    assert_eq!(drawn, json!(27), "the bars over time");
    assert!(
        browser
            .eval("document.querySelector('#chart-status').getAttribute('aria-label')")
            .as_str()
            .unwrap()
            .contains("2xx 23")
    );
    let month = browser.eval("document.querySelector('#chart-billing').getAttribute('aria-label')");
    assert!(month.as_str().unwrap().ends_with(" 27"), "billing counts every call: {month}");
    browser.screenshot(&shots().join("analytics.png"));
    // Grouped another way, from the page's own control.
    browser
        .eval("const s = document.querySelector('#group-by'); s.value = 'route'; s.dispatchEvent(new Event('change'))");
    browser.wait_for("by route", "location.search.includes('group_by=route') && document.querySelector('tr[data-group=invoices] td[data-column=calls]')?.textContent === '23'");
    drop(node);
}

#[test]
fn the_console_serves_its_pages_and_the_admin_api_only_to_its_own_origin() {
    let gui = free_port();
    let admin = free_port();
    let (dir, _) = conf_dir(&[
        "prefix = servroot".into(),
        "proxy_listen = off".into(),
        "status_listen = off".into(),
        format!("admin_listen = 127.0.0.1:{admin}"),
    ]);
    let listen = format!("127.0.0.1:{gui}");
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    node.wait_for_log("gateway started");
    assert!(node.log().contains(&format!("console listening listen={listen}")), "{}", node.log());
    let gui = at(gui);

    // Every console URL loads the page, with headers that keep it to its own origin.
    for path in ["/", "/data-planes", "/services", "/services/anything", "/consumers/alice"] {
        let page = send(gui, "GET", path, &[], None);
        assert_eq!(page.status, 200, "{path}: {page:?}");
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(page.body.contains("<script type=\"module\" src=\"/assets/app.js\">"), "{}", page.body);
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
    }
    assert_eq!(send(gui, "GET", "/nowhere", &[], None).status, 404);
    let script = send(gui, "GET", "/assets/app.js", &[], None);
    assert_eq!((script.status, script.header("content-type")), (200, Some("text/javascript; charset=utf-8")));
    assert_eq!(send(gui, "POST", "/services", &[], Some("x")).status, 405);
    // A page under another site's name is refused (DNS rebinding); a link from anywhere is not.
    assert_eq!(send(gui, "GET", "/", &[("Host", "evil.example")], None).status, 403);
    assert_eq!(send(gui, "GET", "/", &[("Sec-Fetch-Site", "cross-site")], None).status, 200);

    // The Admin API on the console's origin: reads and writes from the page work...
    let origin = format!("http://{listen}");
    let same = [("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin"), ("Content-Type", "application/json")];
    let created = send(gui, "POST", "/api/services", &same, Some(r#"{"name":"made-here","url":"http://127.0.0.1:9"}"#));
    assert_eq!(created.status, 201, "{created:?}");
    let listed = send(gui, "GET", "/api/services?size=10", &[], None);
    assert_eq!(listed.json()["data"][0]["name"], "made-here");
    let status = send(gui, "GET", "/api/status", &[], None);
    assert!(status.json()["configuration_hash"].is_string(), "{status:?}");
    assert_eq!(send(at(admin), "GET", "/services/made-here", &[], None).status, 200, "the same Admin API");
    // ...and nothing from another site does: no CORS opening, no cross-site write.
    let evil = [("Origin", "http://evil.example"), ("Content-Type", "application/json")];
    let refused = send(gui, "POST", "/api/services", &evil, Some(r#"{"name":"not-made","url":"http://127.0.0.1:9"}"#));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.header("access-control-allow-origin").is_none());
    let cross = send(gui, "DELETE", "/api/services/made-here", &[("Sec-Fetch-Site", "cross-site")], None);
    assert_eq!(cross.status, 403, "{cross:?}");
    assert_eq!(send(gui, "GET", "/api/services/not-made", &[], None).status, 404);
    assert_eq!(send(gui, "GET", "/api/services/made-here", &[("Host", "evil.example")], None).status, 403);
    drop(node);
}

#[test]
fn data_planes_and_nodes_without_an_admin_api_serve_no_console() {
    let dir = cluster_dir();
    let (cluster, gui) = (free_port(), free_port());
    let cp = start_cp_env(dir.path(), cluster, &[], &[]);
    let listen = format!("127.0.0.1:{gui}");
    let dp = crate::hybrid::start_dp_env(dir.path(), "dp", cluster, &[], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    let dp = dp.gateway;
    poll("the data plane connected", SYNC_DEADLINE, || (data_planes(&cp).len() == 1).then_some(()));
    assert!(std::net::TcpStream::connect(at(gui)).is_err(), "nothing listens on a data plane's admin_gui_listen");
    assert!(!dp.log().contains("console listening"), "{}", dp.log());
    drop(dp);

    let (dir, _) = conf_dir(&["prefix = servroot".into(), "proxy_listen = off".into(), "admin_listen = off".into()]);
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    node.wait_for_log("gateway started");
    assert!(node.log().contains("the console (admin_gui_listen) is not served"), "{}", node.log());
    assert!(std::net::TcpStream::connect(at(gui)).is_err());
    drop(node);

    // `admin_gui_listen = off` on a node with an Admin API: no console.
    let admin = free_port();
    let (dir, _) = conf_dir(&[
        "prefix = servroot".into(),
        "proxy_listen = off".into(),
        "status_listen = off".into(),
        format!("admin_listen = 127.0.0.1:{admin}"),
        "admin_gui_listen = off".into(),
    ]);
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
    node.wait_for_log("Admin API listening");
    node.wait_for_log("gateway started");
    assert!(!node.log().contains("console"), "{}", node.log());
}

#[test]
fn an_ssl_console_address_serves_its_certificate() {
    let ca = gateway_tests::pki::TestCa::new("console test CA");
    let pem = ca.server(&["console.test"]);
    let (admin, plain, tls) = (free_port(), free_port(), free_port());
    let (dir, _) = conf_dir(&[
        "prefix = servroot".into(),
        "proxy_listen = off".into(),
        "status_listen = off".into(),
        format!("admin_listen = 127.0.0.1:{admin}"),
        format!("admin_gui_ssl_cert = {}", pem.cert.replace('\n', "\\n")),
        format!("admin_gui_ssl_cert_key = {}", pem.key.replace('\n', "\\n")),
        "admin_allowed_hosts = console.test".into(),
    ]);
    let listen = format!("127.0.0.1:{plain}, 127.0.0.1:{tls} ssl");
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[("KONG_ADMIN_GUI_LISTEN", &listen)]);
    node.wait_for_log("gateway started");
    let config = ca.client_config(&["http/1.1"]);
    assert_eq!(crate::admin_hardening::tls_get(at(tls), "console.test", config.clone(), "/data-planes"), Ok(200));
    assert_eq!(crate::admin_hardening::tls_get(at(tls), "console.test", config, "/api/status"), Ok(200));
    assert_eq!(send(at(plain), "GET", "/", &[], None).status, 200);
}
