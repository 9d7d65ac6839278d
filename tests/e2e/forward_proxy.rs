//! Data planes behind a forward proxy: the cluster link through real CONNECT proxies (tinyproxy,
//! squid, stunnel in front of tinyproxy for an HTTPS proxy), each failure naming its hop, and
//! `gateway cluster check`. Every test reads the proxy's own log to see that it carried the link.

use std::path::Path;

use gateway_tests::pki::TestCa;
use gateway_tests::{EchoServer, free_port, peers, run, stdout};

use crate::hybrid::{add_route, cluster_dir, data_planes, start_cp, start_dp, wait_status};

fn proxy_lines(url: &str) -> Vec<String> {
    vec!["cluster_use_proxy = on".into(), format!("proxy_server = {url}")]
}

/// `gateway cluster check` for a data plane conf written into `dir`.
fn check(dir: &Path, cluster: u16, extra: &[String]) -> (bool, String) {
    let mut lines = vec![
        "role = data_plane".to_string(),
        "database = off".into(),
        "cluster_cert = cluster.crt".into(),
        "cluster_cert_key = cluster.key".into(),
        format!("cluster_control_plane = 127.0.0.1:{cluster}"),
        format!("cluster_telemetry_endpoint = 127.0.0.1:{}", free_port()),
        "prefix = checker".into(),
    ];
    lines.extend_from_slice(extra);
    std::fs::write(dir.join("check.conf"), lines.join("\n") + "\n").unwrap();
    let out = run(dir, &["cluster", "check", "-c", "check.conf"], &[]);
    (out.status.success(), stdout(&out))
}

#[test]
fn a_data_plane_syncs_through_tinyproxy_and_names_each_refusal() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/through");

    // Without auth.
    let open = peers::tinyproxy(dir.path(), &[cp.cluster], None);
    let dp = start_dp(dir.path(), "open", cp.cluster, &proxy_lines(&open.url("http", None)));
    wait_status(&dp, "/through", 200);
    assert!(open.log_text().contains(&format!("CONNECT 127.0.0.1:{}", cp.cluster)), "{}", open.log_text());

    // With Basic auth: good credentials sync; none is 407; wrong ones are 401 (tinyproxy's answer).
    // (tinyproxy's config takes only letters and digits in a password; squid's test below has `#`.)
    let guarded = peers::tinyproxy(dir.path(), &[cp.cluster], Some(("dp", "s3cretPass")));
    let good = start_dp(dir.path(), "good", cp.cluster, &proxy_lines(&guarded.url("http", Some("dp:s3cretPass"))));
    wait_status(&good, "/through", 200);
    let mut none = start_dp(dir.path(), "none", cp.cluster, &proxy_lines(&guarded.url("http", None)));
    none.gateway.wait_for_log("407 Proxy Authentication Required\": the proxy wants credentials");
    let mut wrong = start_dp(dir.path(), "wrong", cp.cluster, &proxy_lines(&guarded.url("http", Some("dp:nope"))));
    wrong.gateway.wait_for_log("401 Unauthorized\": the proxy rejected the credentials");
    for log in [none.gateway.log(), wrong.gateway.log(), good.gateway.log()] {
        assert!(!log.contains("s3cret") && !log.contains("nope"), "credentials leaked into the log:\n{log}");
    }
    let rows = serde_json::to_string(&data_planes(&cp)).unwrap();
    assert!(!rows.contains("s3cret"), "{rows}");

    // A proxy that does not allow CONNECT to the CP's port: 403, named.
    let strict = peers::tinyproxy(dir.path(), &[free_port()], None);
    let mut forbidden = start_dp(dir.path(), "forbidden", cp.cluster, &proxy_lines(&strict.url("http", None)));
    forbidden.gateway.wait_for_log("the proxy forbids tunnels to this host or port");
    assert!(forbidden.gateway.log().contains("CONNECT failed"), "{}", forbidden.gateway.log());
}

#[test]
fn squid_with_basic_ncsa_auth_and_a_password_with_a_hash_sign() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/squid");
    let squid = peers::squid(dir.path(), cp.cluster, "dp", "pa#ss");
    let dp = start_dp(dir.path(), "dp", cp.cluster, &proxy_lines(&squid.url("http", Some("dp:pa%23ss"))));
    wait_status(&dp, "/squid", 200);
    // squid logs a CONNECT when the tunnel closes.
    drop(dp);
    gateway_tests::poll("squid's access log", gateway_tests::DEADLINE, || {
        squid.log_text().contains(&format!("CONNECT 127.0.0.1:{}", cp.cluster)).then_some(())
    });
    assert!(squid.log_text().contains(" dp "), "the authenticated user is logged: {}", squid.log_text());
}

#[test]
fn an_https_proxy_is_verified_against_its_own_ca() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/tls");
    let inner = peers::tinyproxy(dir.path(), &[cp.cluster], Some(("dp", "pw")));
    // The proxy's CA is not the cluster's (shared mode pins the cluster certificate anyway).
    let proxy_ca = TestCa::new("proxy CA");
    let leaf = proxy_ca.server(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.path().join("proxy.crt"), &leaf.cert).unwrap();
    std::fs::write(dir.path().join("proxy.key"), &leaf.key).unwrap();
    std::fs::write(dir.path().join("proxy-ca.pem"), proxy_ca.cert_pem()).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), TestCa::new("another CA").cert_pem()).unwrap();
    let stunnel = peers::stunnel(dir.path(), inner.port, &dir.path().join("proxy.crt"), &dir.path().join("proxy.key"));
    let url = stunnel.url("https", Some("dp:pw"));

    let mut lines = proxy_lines(&url);
    lines.extend(["proxy_server_ssl_verify = on".to_string(), "lua_ssl_trusted_certificate = proxy-ca.pem".into()]);
    let verified = start_dp(dir.path(), "verified", cp.cluster, &lines);
    wait_status(&verified, "/tls", 200);

    let mut lines = proxy_lines(&url);
    lines.extend(["proxy_server_ssl_verify = on".to_string(), "lua_ssl_trusted_certificate = other-ca.pem".into()]);
    let mut untrusted = start_dp(dir.path(), "untrusted", cp.cluster, &lines);
    untrusted.gateway.wait_for_log("proxy TLS failed");
    assert!(untrusted.gateway.log().contains("not trusted"), "{}", untrusted.gateway.log());

    let mut lines = proxy_lines(&url);
    lines.push("proxy_server_ssl_verify = off".into());
    let unchecked = start_dp(dir.path(), "unchecked", cp.cluster, &lines);
    wait_status(&unchecked, "/tls", 200);
    let carried = inner.log_text().matches(&format!("CONNECT 127.0.0.1:{}", cp.cluster)).count();
    assert!(carried >= 2, "tinyproxy behind stunnel carried both links: {}", inner.log_text());

    // cluster check through the HTTPS proxy, working and with the wrong CA.
    let (ok, out) = check(dir.path(), cp.cluster, &{
        let mut l = proxy_lines(&url);
        l.push("lua_ssl_trusted_certificate = proxy-ca.pem".into());
        l
    });
    assert!(ok, "{out}");
    for hop in [
        "ok    resolve",
        "ok    connect",
        "ok    proxy TLS",
        "ok    CONNECT",
        "ok    CP TLS",
        "ok    CP certificate",
        "ok    /v1/outlet handshake",
    ] {
        assert!(out.contains(hop), "{hop} in:\n{out}");
    }
    let (ok, out) = check(dir.path(), cp.cluster, &{
        let mut l = proxy_lines(&url);
        l.push("lua_ssl_trusted_certificate = other-ca.pem".into());
        l
    });
    assert!(!ok);
    assert!(out.contains("FAIL  proxy TLS"), "{out}");
}

#[test]
fn when_the_proxy_dies_the_data_plane_keeps_serving_and_redials_through_it() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/kept");
    let port = free_port();
    let mut proxy = peers::tinyproxy_on(dir.path(), port, &[cp.cluster], None);
    let mut dp = start_dp(dir.path(), "dp", cp.cluster, &proxy_lines(&proxy.url("http", None)));
    wait_status(&dp, "/kept", 200);
    proxy.kill();
    dp.gateway.wait_for_log("connect failed: connecting to the proxy");
    assert_eq!(crate::hybrid::get(dp.proxy, "/kept").status, 200);

    let back = peers::tinyproxy_on(dir.path(), port, &[cp.cluster], None);
    add_route(&cp, &echo, "s2", "r2", "/after");
    wait_status(&dp, "/after", 200);
    assert!(back.log_text().contains(&format!("CONNECT 127.0.0.1:{}", cp.cluster)), "{}", back.log_text());
}

#[test]
fn cluster_check_names_the_broken_hop() {
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    let (ok, out) = check(dir.path(), cp.cluster, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("the whole path works"), "{out}");

    let closed = free_port();
    let (ok, out) = check(dir.path(), cp.cluster, &proxy_lines(&format!("http://127.0.0.1:{closed}")));
    assert!(!ok);
    assert!(out.contains("FAIL  connect") && out.contains("the proxy"), "{out}");

    let (ok, out) = check(dir.path(), cp.cluster, &proxy_lines("http://no-such-proxy.invalid:3128"));
    assert!(!ok);
    assert!(out.contains("FAIL  resolve"), "{out}");

    let guarded = peers::tinyproxy(dir.path(), &[cp.cluster], Some(("dp", "pw")));
    let (ok, out) = check(dir.path(), cp.cluster, &proxy_lines(&guarded.url("http", None)));
    assert!(!ok);
    assert!(out.contains("FAIL  CONNECT") && out.contains("407"), "{out}");
    assert!(out.contains("hint:"), "{out}");

    // The proxy cannot reach the control plane (tinyproxy answers 500 "Unable to connect").
    let nowhere = free_port();
    let open = peers::tinyproxy(dir.path(), &[nowhere], None);
    let (ok, out) = check(dir.path(), nowhere, &proxy_lines(&open.url("http", None)));
    assert!(!ok);
    assert!(out.contains("FAIL  CONNECT") && out.contains("the proxy could not reach the control plane"), "{out}");

    // The CP's port answered by something that is not a CP: the CP TLS hop fails.
    let echo = EchoServer::start();
    let (ok, out) = check(dir.path(), echo.addr.port(), &[]);
    assert!(!ok);
    assert!(out.contains("FAIL  CP TLS"), "{out}");

    // Another cluster certificate: the CP certificate hop fails.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    assert!(run(&other, &["hybrid", "gen_cert"], &[]).status.success());
    let (ok, out) = check(&other, cp.cluster, &[]);
    assert!(!ok);
    assert!(out.contains("FAIL  CP certificate"), "{out}");
}

/// The chain a firewall team builds: DP → tinyproxy → nginx `ssl_preread` (TLS passthrough, routed
/// by SNI) → CP. Shared mode's SNI is `kong_clustering`, so that is the name nginx routes.
#[test]
fn through_a_proxy_and_an_sni_router_to_the_control_plane() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/chain");
    let router = peers::nginx_sni_router(dir.path(), "kong_clustering", cp.cluster);
    let proxy = peers::tinyproxy(dir.path(), &[router.port], None);
    let dp = start_dp(dir.path(), "dp", router.port, &proxy_lines(&proxy.url("http", None)));
    wait_status(&dp, "/chain", 200);
    assert!(proxy.log_text().contains(&format!("CONNECT 127.0.0.1:{}", router.port)), "{}", proxy.log_text());
    // nginx logs a stream session when it ends.
    drop(dp);
    gateway_tests::poll("nginx's log of the SNI", gateway_tests::DEADLINE, || {
        router.log_text().contains(&format!("sni=kong_clustering upstream=127.0.0.1:{}", cp.cluster)).then_some(())
    });
}
