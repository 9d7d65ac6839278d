//! rate-limiting on real requests, through the gateway's plugin host (`gateway plugin run`).
//! Each run is a fresh node with fresh counters, so these tests see one request's answer; the
//! counting over many requests is tested in `src/limiter.rs`, and through the gateway end to end.

use gateway_plugin_test::{Plugin, Request};
use serde_json::{Value, json};

fn plugin() -> Plugin {
    Plugin::built().unwrap()
}

#[test]
fn a_request_within_the_limits_gets_kongs_headers() {
    let outcome = plugin().run(json!({"minute": 5, "hour": 100}), Request::get("/").client_ip("10.0.0.1")).unwrap();
    assert_eq!(outcome.error, None);
    assert!(outcome.exit.is_none() && outcome.request.is_some(), "{outcome:?}");
    assert_eq!(outcome.status(), Some(200));
    assert_eq!(outcome.response_header("X-RateLimit-Limit-Minute"), Some("5"));
    assert_eq!(outcome.response_header("X-RateLimit-Remaining-Minute"), Some("4"));
    assert_eq!(outcome.response_header("X-RateLimit-Limit-Hour"), Some("100"));
    assert_eq!(outcome.response_header("X-RateLimit-Remaining-Hour"), Some("99"));
    assert_eq!(outcome.response_header("RateLimit-Limit"), Some("5"));
    assert_eq!(outcome.response_header("RateLimit-Remaining"), Some("4"));
    let reset: u32 = outcome.response_header("RateLimit-Reset").unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset), "{reset}");
    assert_eq!(outcome.response_header("Retry-After"), None);
    assert_eq!(outcome.upstream_header("X-RateLimit-Limit-Minute"), None, "the headers are the client's");
}

#[test]
fn the_headers_replace_the_upstreams() {
    let outcome = plugin()
        .run_upstream(json!({"second": 2}), Request::get("/"), 200, &[("RateLimit-Limit", "999")], "ok")
        .unwrap();
    let limits: Vec<&str> = outcome
        .response
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .filter(|(n, _)| n == "ratelimit-limit")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(limits, ["2"]);
}

#[test]
fn hide_client_headers_sends_none() {
    let outcome = plugin().run(json!({"second": 2, "hide_client_headers": true}), Request::get("/")).unwrap();
    assert_eq!(outcome.error, None);
    let names: Vec<&str> = outcome.response.as_ref().unwrap().headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.iter().all(|n| !n.contains("ratelimit")), "{names:?}");
}

#[test]
fn every_limit_by_lets_a_first_request_through() {
    // Without a route, service, consumer or credential, those fall back to the client's address.
    for config in [
        json!({"minute": 1, "limit_by": "consumer"}),
        json!({"minute": 1, "limit_by": "credential"}),
        json!({"minute": 1, "limit_by": "service"}),
        json!({"minute": 1, "limit_by": "ip"}),
        json!({"minute": 1, "limit_by": "header", "header_name": "X-Api-Client"}),
        json!({"minute": 1, "limit_by": "path", "path": "/limited"}),
    ] {
        let request = Request::get("/limited").header("X-Api-Client", "c1").client_ip("2001:db8::1");
        let outcome = plugin().run(config.clone(), request).unwrap();
        assert_eq!(outcome.error, None, "{config}");
        assert_eq!(outcome.response_header("X-RateLimit-Remaining-Minute"), Some("0"), "{config}");
    }
}

fn refused(config: Value) -> Vec<(String, String)> {
    let errors = plugin().check(config).unwrap().unwrap_err();
    errors.into_iter().map(|e| (e.path, e.message)).collect()
}

#[test]
fn bad_configurations_are_refused_at_write_time() {
    assert_eq!(refused(json!({}))[0].0, "");
    assert_eq!(
        refused(json!({"second": 20, "hour": 10})),
        [(String::new(), "The limit for hour(10.0) cannot be lower than the limit for second(20.0)".to_string())]
    );
    for policy in ["cluster", "redis"] {
        let errors = refused(json!({"second": 1, "policy": policy}));
        assert_eq!(errors[0].0, "policy", "{policy}");
        assert!(errors[0].1.starts_with("only the local policy is available"), "{errors:?}");
    }
    assert_eq!(refused(json!({"second": 1, "redis": {"host": "10.0.0.5", "port": 6380}})).len(), 2);
    assert_eq!(
        refused(json!({"second": 1, "limit_by": "header"}))[0],
        ("header_name".into(), "required field missing".into())
    );
    assert_eq!(refused(json!({"second": 1, "limit_by": "path", "path": "no-slash"}))[0].0, "path");
    assert_eq!(refused(json!({"second": 0}))[0], ("second".into(), "value must be greater than 0".into()));
    assert_eq!(refused(json!({"second": 1, "error_code": 302}))[0].0, "error_code");
    assert_eq!(refused(json!({"second": 1, "sync_rate": 10}))[0].1, "sync_rate can only be used with the redis policy");
}

#[test]
fn a_kong_export_is_taken_and_filled_in() {
    let export = json!({
        "second": null, "minute": 60, "hour": null, "day": null, "month": null, "year": null,
        "limit_by": "ip", "header_name": null, "path": null, "policy": "local", "fault_tolerant": true,
        "redis": {"host": null, "port": 6379, "timeout": 2000, "username": null, "password": null,
                  "database": 0, "ssl": false, "ssl_verify": false, "server_name": null},
        "hide_client_headers": false, "error_code": 429, "error_message": "API rate limit exceeded",
        "sync_rate": -1
    });
    assert_eq!(plugin().check(export.clone()).unwrap().unwrap(), export);
}
