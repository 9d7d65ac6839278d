//! Upstream host names through the proxy's own caching resolver, against dnsmasq: Kong's record
//! order (SRV, then A), the hosts file, answers cached for their TTL, "no such name" answered
//! 503, and stale answers keeping known upstreams reachable while the name server is down.

use std::time::{Duration, Instant};

use gateway_tests::peers::{dns_questions, dnsmasq, dnsmasq_on};
use gateway_tests::{DEADLINE, DbLess, EchoServer, http_request, poll};

fn get(node: &DbLess, path: &str) -> gateway_tests::Exchange {
    http_request(node.proxy, "GET", path, &[("Accept", "application/json")]).unwrap()
}

#[test]
fn upstream_names_are_resolved_cached_and_served_stale_while_the_name_server_is_down() {
    let upstream = EchoServer::start();
    let port = upstream.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let records = [
        // TTL 1 s: stale soon.
        "--host-record=short.test,127.0.0.1,1".to_string(),
        "--host-record=long.test,127.0.0.1,300".to_string(),
        format!("--srv-host=svc.test,long.test,{port}"),
    ];
    let mut dns = dnsmasq(dir.path(), &records);
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 from-hosts.test\n").unwrap();
    let service = |name: &str, url: String| {
        format!("- name: {name}\n  url: {url}\n  retries: 0\n  routes: [{{name: {name}, paths: [/{name}]}}]\n")
    };
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n{}{}{}{}{}{}",
        service("short", format!("http://short.test:{port}")),
        service("long", format!("http://LONG.test:{port}")),
        // The SRV record gives the port.
        service("srv", "http://svc.test:1".into()),
        service("hosts", format!("http://from-hosts.test:{port}")),
        service("missing", "http://missing.test:80".into()),
        service("never", "http://never-asked.test:80".into()),
    );
    let node = DbLess::start(
        &yaml,
        &[
            format!("dns_resolver = 127.0.0.1:{}", dns.port),
            format!("dns_hostsfile = {}", hosts.display()),
            "dns_stale_ttl = 4".into(),
            "dns_error_ttl = 0.5".into(),
        ],
    );

    for path in ["/short", "/long", "/srv", "/hosts"] {
        let answer = get(&node, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    let missing = get(&node, "/missing");
    assert_eq!(missing.status, 503, "{}", missing.body);
    assert_eq!(missing.json()["message"], "name resolution failed");

    // Kong's order: SRV first, then A; each asked once and cached for its TTL.
    for _ in 0..5 {
        assert_eq!(get(&node, "/long").status, 200);
    }
    assert_eq!(dns_questions(&dns, "SRV", "long.test"), 1, "{}", dns.log_text());
    assert_eq!(dns_questions(&dns, "A", "long.test"), 1, "the SRV target's address is the same answer");
    assert_eq!(dns_questions(&dns, "SRV", "svc.test"), 1);
    assert_eq!(dns_questions(&dns, "A", "svc.test"), 0, "an SRV answer ends the search");
    assert_eq!(dns_questions(&dns, "A", "missing.test"), 1);
    assert_eq!(get(&node, "/missing").status, 503);
    assert_eq!(dns_questions(&dns, "A", "missing.test"), 1, "not found is cached for dns_not_found_ttl");
    assert_eq!(dns_questions(&dns, "A", "from-hosts.test") + dns_questions(&dns, "SRV", "from-hosts.test"), 0);

    // The name server goes away; short.test's TTL runs out (time has to pass: nothing to poll).
    dns.kill();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    for path in ["/short", "/long", "/srv", "/hosts"] {
        let answer = get(&node, path);
        assert_eq!(answer.status, 200, "{path} is served from the cache, stale or not: {}", answer.body);
    }
    // A name never asked cannot be resolved: a DNS failure, not "no such name".
    let never = get(&node, "/never");
    assert_eq!(never.status, 500, "{}", never.body);
    assert_eq!(never.json()["message"], "failed the initial dns/balancer resolve");
    assert!(
        node.gateway.log().contains("refreshing a DNS answer failed; serving the stale one"),
        "{}",
        node.gateway.log()
    );

    // Past dns_stale_ttl the stale answer goes, and the request fails.
    let gone = poll("the stale answer to expire", DEADLINE, || {
        let answer = get(&node, "/short");
        (answer.status != 200).then_some(answer)
    });
    assert_eq!(gone.status, 500, "{}", gone.body);
    assert!(stopped.elapsed() >= Duration::from_secs(4), "stale for dns_stale_ttl: {:?}", stopped.elapsed());
    assert_eq!(get(&node, "/long").status, 200, "a long TTL is still fresh");

    // The name server comes back: answered again once dns_error_ttl has passed.
    let _back = dnsmasq_on(dir.path(), dns.port, &records);
    poll("short.test to resolve again", DEADLINE, || (get(&node, "/short").status == 200).then_some(()));
}

#[test]
fn kongs_new_client_asks_srv_only_for_service_names() {
    let upstream = EchoServer::start();
    let port = upstream.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let dns = dnsmasq(
        dir.path(),
        &[
            "--host-record=plain.test,127.0.0.1,60".to_string(),
            format!("--srv-host=_http._tcp.svc.test,plain.test,{port}"),
        ],
    );
    let yaml = format!(
        "_format_version: '3.0'\nservices:\n\
         - {{name: plain, url: 'http://plain.test:{port}', routes: [{{name: plain, paths: [/plain]}}]}}\n\
         - {{name: srv, url: 'http://_http._tcp.svc.test:1', routes: [{{name: srv, paths: [/srv]}}]}}\n"
    );
    let node = DbLess::start(
        &yaml,
        &[
            "new_dns_client = on".into(),
            format!("resolver_address = 127.0.0.1:{}", dns.port),
            "resolver_family = A,SRV".into(),
            // The legacy set is not read with the new client (and is warned about).
            "dns_resolver = 127.0.0.1:9".into(),
        ],
    );
    assert_eq!(get(&node, "/plain").status, 200);
    assert_eq!(get(&node, "/srv").status, 200);
    assert_eq!(dns_questions(&dns, "A", "plain.test"), 1);
    assert_eq!(dns_questions(&dns, "SRV", "plain.test"), 0, "SRV only for _service._proto names");
    assert_eq!(dns_questions(&dns, "SRV", "_http._tcp.svc.test"), 1);
    assert!(
        node.gateway.log().contains("dns_resolver has no effect unless new_dns_client = off"),
        "{}",
        node.gateway.log()
    );
}
